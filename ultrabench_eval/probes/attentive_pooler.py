"""The attentive classifier of V-JEPA's frozen evaluation, as many independent copies at once.

One copy is V-JEPA's `AttentiveClassifier` (one cross-attention block): learned queries [Q, D]
attend over the LayerNorm-ed patch tokens of an image (multi-head, queries from the learned
tokens, keys and values from the patch tokens, an output projection), a residual connection back
to the queries, a residual MLP block (LayerNorm, D -> hidden -> D, GELU), the mean over the
queries, and a linear layer to the classes. Initialisation as V-JEPA's: truncated normal
(std 0.02) weights and zero biases in the pooler, the output projection and the second MLP layer
divided by sqrt 2, LayerNorms at identity, the classifier as `nn.Linear` draws it.

Each copy's parameters are one flat row (`PoolerLayout` says where each tensor lives), so copies
stack along leading axes and train as one batched model.

What makes it cheap: the tokens enter only through two token-sized products. A head's score of
token x, q_h . (W_k,h LN(x) + b_k,h) / sqrt(d_h), with LN(x) = w * xhat + b (xhat the plain
normalised token), differs from xhat . (w * W_k,h^T q_h) / sqrt(d_h) by terms that are the same
for every token, which the softmax cancels (so the key bias has no effect and is left out). And
since the weights sum to one, the attention-weighted value is W_v,h (w * sum_t a_t xhat_t + b)
+ b_v,h. So per image and head the work over tokens is one score vector and one weighted sum of
the normalised tokens, O(T D), instead of projecting every token to keys and values, O(T D^2);
the normalised tokens are computed once and shared by every copy. Gradients are the textbook
block's (the cancelled terms have zero gradient there too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional

__all__ = ["INIT_STD", "LAYER_NORM_EPS", "PoolerLayout", "PoolerShape", "normalise_tokens"]

LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, which V-JEPA's pooler uses
INIT_STD = 0.02


@dataclass(frozen=True)
class PoolerShape:
    """The sizes of one attentive classifier."""

    dim: int  # token width D
    heads: int  # divides dim
    queries: int
    hidden: int  # width of the MLP block; 0: no MLP block
    classes: int

    def __post_init__(self) -> None:
        if min(self.dim, self.heads, self.queries, self.classes) < 1 or self.hidden < 0:
            raise ValueError(f"pooler sizes must be positive: {self}")
        if self.dim % self.heads:
            raise ValueError(f"{self.heads} heads do not divide the token width {self.dim}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


# How each tensor starts: V-JEPA's truncated normal, the same divided by sqrt 2 (the residual
# branches' last layers), constants, and nn.Linear's draws (for the classifier).
_TRUNC, _TRUNC_RESIDUAL, _ONE, _ZERO, _LINEAR_WEIGHT, _LINEAR_BIAS = range(6)


@dataclass(frozen=True)
class _Entry:
    name: str
    shape: tuple[int, ...]  # as stored
    init: int
    offset: int
    # a linear layer's weight stored input-major, [in, out] (nn.Linear's transposed): products
    # take it as it lies, and its gradient comes out in that layout, with no copy
    input_major: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class PoolerLayout:
    """Where each parameter of one copy lives in its flat row, how it starts, and the batched
    forward pass over stacked rows.

    Linear weights are stored input-major ([in, out]), but for the key and value weights,
    stored as nn.Linear's ([out, in]), so that each head's weight is a block of rows.
    """

    def __init__(self, shape: PoolerShape) -> None:
        self.shape = shape
        d, m, k = shape.dim, shape.hidden, shape.classes
        # the tensors weight decay applies to (weights and queries; not biases nor LayerNorms,
        # as V-JEPA), then the others; (name, stored shape, init, input-major)
        decayed: list[tuple[str, tuple[int, ...], int, bool]] = [
            ("query", (shape.queries, d), _TRUNC, False),
            ("q_weight", (d, d), _TRUNC, True),
            ("k_weight", (d, d), _TRUNC, False),
            ("v_weight", (d, d), _TRUNC, False),
            ("proj_weight", (d, d), _TRUNC_RESIDUAL, True),
        ]
        undecayed: list[tuple[str, tuple[int, ...], int, bool]] = [
            ("norm_weight", (d,), _ONE, False),
            ("norm_bias", (d,), _ZERO, False),
            ("q_bias", (d,), _ZERO, False),
            ("v_bias", (d,), _ZERO, False),
            ("proj_bias", (d,), _ZERO, False),
        ]
        if m:
            decayed += [
                ("fc1_weight", (d, m), _TRUNC, True),
                ("fc2_weight", (m, d), _TRUNC_RESIDUAL, True),
            ]
            undecayed += [
                ("mlp_norm_weight", (d,), _ONE, False),
                ("mlp_norm_bias", (d,), _ZERO, False),
                ("fc1_bias", (m,), _ZERO, False),
                ("fc2_bias", (d,), _ZERO, False),
            ]
        decayed.append(("head_weight", (d, k), _LINEAR_WEIGHT, True))
        undecayed.append(("head_bias", (k,), _LINEAR_BIAS, False))
        self.entries: dict[str, _Entry] = {}
        offset = 0
        for name, stored, init, input_major in decayed + undecayed:
            self.entries[name] = _Entry(name, stored, init, offset, input_major)
            offset += math.prod(stored)
        self.size = offset
        self.decayed = tuple(spec[0] for spec in decayed)  # names, in layout order
        self.undecayed = tuple(spec[0] for spec in undecayed)

    def initialise(self, generator: torch.Generator) -> torch.Tensor:
        """One copy's flat row [N], its random tensors drawn from `generator` in layout order
        (each weight drawn in nn.Linear's layout, [out, in])."""
        row = torch.empty(self.size)
        fan_in = self.shape.dim  # of the classifier
        for entry in self.entries.values():
            value = row[entry.offset : entry.offset + entry.size].view(entry.shape)
            if entry.input_major:
                value = value.T
            if entry.init in (_TRUNC, _TRUNC_RESIDUAL):
                drawn = torch.empty(value.shape)
                torch.nn.init.trunc_normal_(drawn, std=INIT_STD, generator=generator)
                if entry.init == _TRUNC_RESIDUAL:
                    drawn.div_(math.sqrt(2.0))
                value.copy_(drawn)
            elif entry.init == _LINEAR_WEIGHT:
                drawn = torch.empty(value.shape)
                torch.nn.init.kaiming_uniform_(drawn, a=math.sqrt(5), generator=generator)
                value.copy_(drawn)
            elif entry.init == _LINEAR_BIAS:
                bound = 1.0 / math.sqrt(fan_in)
                value.uniform_(-bound, bound, generator=generator)
            else:
                value.fill_(1.0 if entry.init == _ONE else 0.0)
        return row

    def views(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each parameter as a view of flat rows [..., N]: [..., *shape]."""
        lead = params.shape[:-1]
        # one split, not a slice per tensor: its gradient is one concatenation, where each
        # slice's would be a zero-filled copy of the whole row
        pieces = params.split_with_sizes([e.size for e in self.entries.values()], dim=-1)
        return {
            name: piece.view(*lead, *e.shape)
            for (name, e), piece in zip(self.entries.items(), pieces, strict=True)
        }

    def logits(self, params: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        """Class scores of every copy for its images.

        `params`: each parameter [G, J, *shape] (`views` of flat rows [G, J, N]): G groups of J
        copies; `tokens` [G, B, T, D], normalised (`normalise_tokens`): group g's B images, seen
        by each of its J copies. Returns logits [G, J, B, K]. (Training: a group is one
        problem, its copies its learning rates; evaluation: one group of every copy.)

        Weights enter every product as views of the rows, never copied: at the real size they
        outweigh a batch's activations.
        """
        s = self.shape
        g, j = params["query"].shape[:2]
        b, t, d = tokens.shape[1:]
        heads, e, n_query = s.heads, s.head_dim, s.queries
        copies = g * j
        p = {name: value.flatten(0, 1) for name, value in params.items()}  # [G * J, ...]
        norm_weight, norm_bias = p["norm_weight"], p["norm_bias"]  # [GJ, D]
        query = p["query"]  # [GJ, Q, D]
        q = torch.baddbmm(p["q_bias"][:, None], query, p["q_weight"])
        q = q.view(copies, n_query, heads, e)
        # each head's query seen from the normalised tokens: w * W_k,h^T q_h / sqrt(d_h)
        # per head by unbind, whose gradient is one stack (a select's is a zero-filled copy)
        k_weights = p["k_weight"].view(copies, heads, e, d).unbind(1)
        q_heads = q.unbind(2)
        probe = torch.stack(
            [torch.bmm(qh, kh) for qh, kh in zip(q_heads, k_weights, strict=True)], dim=2
        )
        probe = probe * (norm_weight[:, None, None, :] / math.sqrt(e))  # [GJ, Q, H, D]
        scores = torch.bmm(probe.view(g, -1, d), tokens.reshape(g, b * t, d).transpose(1, 2))
        weights = scores.view(g, -1, b, t).softmax(dim=3)  # over the tokens
        weights = weights.transpose(1, 2).reshape(g * b, -1, t)
        pooled = torch.bmm(weights, tokens.reshape(g * b, t, d))  # [G * B, J * Q * H, D]
        pooled = pooled.view(g, b, j, -1).transpose(1, 2).reshape(copies, b, n_query, heads, d)
        # the LayerNorm's affine map, after the weighted sum (the weights sum to one)
        pooled = pooled * norm_weight[:, None, None, None] + norm_bias[:, None, None, None]
        v_weights = p["v_weight"].view(copies, heads, e, d).unbind(1)
        pooled_heads = pooled.unbind(3)
        values = torch.cat(
            [
                torch.bmm(ph.reshape(copies, -1, d), vh.transpose(1, 2))
                for ph, vh in zip(pooled_heads, v_weights, strict=True)
            ],
            dim=2,
        )  # [GJ, B * Q, D]
        values = values + p["v_bias"][:, None]
        attended = torch.baddbmm(p["proj_bias"][:, None], values, p["proj_weight"])
        h = attended.view(copies, b, n_query, d) + query[:, None]  # the residual: queries
        if s.hidden:
            normed = functional.layer_norm(h, (d,), eps=LAYER_NORM_EPS)
            normed = (
                normed * p["mlp_norm_weight"][:, None, None] + p["mlp_norm_bias"][:, None, None]
            )
            inner = torch.baddbmm(
                p["fc1_bias"][:, None],
                normed.view(copies, -1, d),
                p["fc1_weight"],
            )
            outer = torch.baddbmm(
                p["fc2_bias"][:, None],
                functional.gelu(inner),
                p["fc2_weight"],
            )
            h = h + outer.view(copies, b, n_query, d)
        features = h.mean(dim=2)  # [GJ, B, D]
        logits = torch.baddbmm(p["head_bias"][:, None], features, p["head_weight"])
        return logits.view(g, j, b, -1)


def normalise_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """Tokens [..., D] of any float dtype -> float32, each token LayerNorm-ed without the affine
    map (which every copy applies on its own, after pooling)."""
    tokens = tokens.float()
    return functional.layer_norm(tokens, (tokens.shape[-1],), eps=LAYER_NORM_EPS)
