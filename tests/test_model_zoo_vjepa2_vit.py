"""The V-JEPA 2 video ViT: rotary embedding, token order and the whole forward pass against
references written out element by element, independently of the vectorised module."""

import math

import pytest
import torch
import torch.nn.functional as F

from model_zoo.vjepa2_vit import (
    VIT_LARGE,
    PatchEmbed3D,
    RoPEAttention,
    VJEPA2VisionTransformer,
    grid_positions,
    rope_rotate,
)


def _closed_form_rope(vec, pos, interleaved):
    """One vector rotated by one position, element by element. V-JEPA 2: element j uses
    frequency j mod d/2 (the d/2 angles tiled twice); standard RoPE: frequency j // 2."""
    d = len(vec)
    half = d // 2
    out = []
    for j in range(d):
        i = j // 2 if interleaved else j % half
        theta = pos * 10000.0 ** (-i / half)
        partner = -vec[j + 1] if j % 2 == 0 else vec[j - 1]
        out.append(vec[j] * math.cos(theta) + partner * math.sin(theta))
    return out


@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_matches_the_closed_form(interleaved):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 20, generator=gen, dtype=torch.float64)
    positions = torch.tensor([0, 1, 3, 7, 13])
    got = rope_rotate(x, positions, interleaved)
    want = torch.tensor(
        [_closed_form_rope(x[n].tolist(), int(p), interleaved) for n, p in enumerate(positions)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got[0], x[0])  # position 0 is the identity


def _logits(attn, q, k, positions):
    return attn.rotate(q, positions) @ attn.rotate(k, positions).transpose(-2, -1)


def test_standard_rope_scores_depend_only_on_relative_positions():
    """With the interleaved (V-JEPA 2.1) layout every pair is a true rotation, so shifting all
    (time, row, column) positions by a constant leaves every q.k score unchanged: this checks
    the head split and the per-axis positions the two layouts share."""
    attn = RoPEAttention(128, 2, interleaved_rope=True)  # head_dim 64: 3 x 20 rotated + 4
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 1, 2, 24, 64, generator=gen, dtype=torch.float64).unbind(0)
    positions = grid_positions(2, 3, 4)
    shifted = tuple(p + offset for p, offset in zip(positions, (3, 5, 11), strict=True))
    torch.testing.assert_close(_logits(attn, q, k, shifted), _logits(attn, q, k, positions))


def test_vjepa2_rope_keeps_its_tiled_frequencies():
    """V-JEPA 2's tiled angles turn a pair's two members by different angles, so the scores
    are NOT shift-invariant; a model 'fixed' to standard RoPE would not match its weights."""
    attn = RoPEAttention(128, 2, interleaved_rope=False)
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 1, 2, 24, 64, generator=gen, dtype=torch.float64).unbind(0)
    positions = grid_positions(2, 3, 4)
    shifted = tuple(p + 1 for p in positions)
    assert not torch.allclose(_logits(attn, q, k, shifted), _logits(attn, q, k, positions))


def test_head_dimension_split_is_time_height_width_then_unrotated():
    attn = RoPEAttention(128, 2)
    assert attn.axis_dim == 20  # ViT-L's head_dim 64 as well: 2 * ((64 // 3) // 2)
    t, r, c = grid_positions(2, 2, 2)
    same = torch.randn(64, dtype=torch.float64).expand(1, 1, 8, 64)  # one vector at every token
    out = attn.rotate(same, (t, r, c))[0, 0]

    def index(tt, rr, cc):
        return tt * 4 + rr * 2 + cc

    def changed(a, b):
        return set(torch.nonzero(out[a] != out[b]).flatten().tolist())

    assert changed(index(1, 0, 0), index(0, 0, 0)) == set(range(0, 20))
    assert changed(index(0, 1, 0), index(0, 0, 0)) == set(range(20, 40))
    assert changed(index(0, 0, 1), index(0, 0, 0)) == set(range(40, 60))
    torch.testing.assert_close(out[:, 60:], same[0, 0, :, 60:])


def test_token_order_and_positions_follow_the_patch_grid():
    """Token n of a [T, H, W] grid is (t, row, col) with n = t*H*W + row*W + col, non-square."""
    model = VJEPA2VisionTransformer(embed_dim=12, depth=0, num_heads=1, in_chans=1)
    embed = PatchEmbed3D(16, 2, 1, 1)
    with torch.no_grad():
        embed.proj.weight.fill_(1.0 / (2 * 16 * 16))  # token = mean of its tubelet
        embed.proj.bias.zero_()
    model.patch_embed = embed
    frame = torch.arange(6).view(6, 1, 1) // 2
    row = torch.arange(48).view(1, 48, 1) // 16
    col = torch.arange(80).view(1, 1, 80) // 16
    video = (frame * 100 + row * 10 + col).float()[None, None]  # [1, 1, 6, 48, 80]
    tokens, (t, r, c) = model.tokenize(video)
    assert tokens.shape == (1, 3 * 3 * 5, 1)
    torch.testing.assert_close(tokens[0, :, 0], (t * 100 + r * 10 + c).float())
    assert t.tolist() == [n // 15 for n in range(45)]
    assert r.tolist() == [(n % 15) // 5 for n in range(45)]
    assert c.tolist() == [n % 5 for n in range(45)]


def _reference_forward(model, video):
    """The encoder written out: unfolded tubelets, per-head attention with the closed-form
    rotation of every token's query and key, pre-norm blocks, final norm."""
    w = {k: v.double() for k, v in model.state_dict().items()}
    dim = model.embed_dim
    heads = model.blocks[0].attn.num_heads
    head_dim = dim // heads
    axis = 2 * ((head_dim // 3) // 2)
    b, c, frames, height, width = video.shape
    t_n, r_n, c_n = frames // 2, height // 16, width // 16
    tubes = video.double()[:, :, : t_n * 2, : r_n * 16, : c_n * 16]
    tubes = tubes.reshape(b, c, t_n, 2, r_n, 16, c_n, 16).permute(0, 2, 4, 6, 1, 3, 5, 7)
    x = tubes.reshape(b, t_n * r_n * c_n, -1) @ w["patch_embed.proj.weight"].reshape(dim, -1).T
    x = x + w["patch_embed.proj.bias"]
    grid = [(t, r, cc) for t in range(t_n) for r in range(r_n) for cc in range(c_n)]

    def rotate(vec, pos):
        out = []
        for a, p in enumerate(pos):
            out += _closed_form_rope(vec[a * axis : (a + 1) * axis], p, interleaved=False)
        return out + vec[3 * axis :]

    def rotate_tokens(m):  # [b, N, head_dim], token n at grid[n]
        rows = [[rotate(m[s, n].tolist(), grid[n]) for n in range(len(grid))] for s in range(b)]
        return torch.tensor(rows, dtype=torch.float64)

    for i in range(len(model.blocks)):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (dim,), w[p + "norm1.weight"], w[p + "norm1.bias"], eps=1e-6)
        qkv = (h @ w[p + "attn.qkv.weight"].T + w[p + "attn.qkv.bias"]).view(
            b, -1, 3, heads, head_dim
        )
        outs = []
        for hd in range(heads):
            q, k, v = (qkv[:, :, j, hd] for j in range(3))
            q, k = rotate_tokens(q), rotate_tokens(k)
            scores = (q @ k.transpose(1, 2) / math.sqrt(head_dim)).softmax(-1)
            outs.append(scores @ v)
        x = x + torch.cat(outs, -1) @ w[p + "attn.proj.weight"].T + w[p + "attn.proj.bias"]
        h = F.layer_norm(x, (dim,), w[p + "norm2.weight"], w[p + "norm2.bias"], eps=1e-6)
        h = F.gelu(h @ w[p + "mlp.fc1.weight"].T + w[p + "mlp.fc1.bias"])
        x = x + h @ w[p + "mlp.fc2.weight"].T + w[p + "mlp.fc2.bias"]
    return F.layer_norm(x, (dim,), w["norm.weight"], w["norm.bias"], eps=1e-6)


@pytest.mark.parametrize(("dim", "heads"), [(96, 2), (192, 3)])  # head_dim 48 (no rest), 64
def test_forward_matches_the_written_out_reference(dim, heads):
    torch.manual_seed(0)
    model = VJEPA2VisionTransformer(embed_dim=dim, depth=2, num_heads=heads).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a dropped term shows
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    video = torch.randn(2, 3, 4, 32, 48)
    with torch.no_grad():
        got = model(video)
    assert got.shape == (2, 2 * 2 * 3, dim)
    torch.testing.assert_close(got.double(), _reference_forward(model, video), atol=2e-5, rtol=1e-4)


def test_full_size_vit_large_on_meta():
    with torch.device("meta"):
        model = VJEPA2VisionTransformer(**VIT_LARGE)
    # what vjepa2's vit_large(use_rope=True) instantiates: 303,885,312 parameters
    assert sum(p.numel() for p in model.parameters()) == 303_885_312
    assert len(model.blocks) == 24 and model.blocks[0].attn.axis_dim == 20
    assert model.patch_embed.proj.weight.shape == (1024, 3, 2, 16, 16)


def test_rejects_images_and_too_short_clips():
    model = VJEPA2VisionTransformer(embed_dim=12, depth=0, num_heads=1)
    with pytest.raises(ValueError, match="video"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="tubelet"):
        model(torch.zeros(1, 3, 1, 32, 32))
