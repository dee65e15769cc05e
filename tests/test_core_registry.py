import sys
import textwrap

import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import MODELS, Registry


def test_unknown_name_lists_known_ones_and_a_suggestion():
    registry = Registry("widget", "ubench widgets")
    registry.register("speckle", object())
    registry.register("shadow", object())
    with pytest.raises(UserError) as err:
        registry.get("speckel")
    text = str(err.value)
    assert "unknown widget 'speckel'" in text and "did you mean 'speckle'" in text
    assert "ubench widgets" in text


def test_prefix_family_and_duplicates():
    registry = Registry("thing", "ubench things")
    registry.register_prefix("fam:", lambda name: ("built", name))
    assert registry.get("fam:abc") == ("built", "fam:abc")
    assert "fam:abc" in registry and "fam:" not in registry
    registry.register("x", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("x", 2)


def test_lazy_population_runs_once():
    calls = []
    registry = Registry("thing", "ubench things", populate=lambda: calls.append(1))
    assert calls == []
    registry.names()
    registry.names()
    assert calls == [1]


def test_builtin_models_registered():
    for name in ("pixels", "hog", "random-vit-s"):
        assert name in MODELS


def _plugin(tmp_path, value, module_source):
    dist = tmp_path / "ubench_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ubench-plugin-demo\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(f"[ultrabench_eval.models]\ndemo = {value}\n")
    (tmp_path / "ubench_plugin_demo.py").write_text(textwrap.dedent(module_source))


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("ubench_plugin_demo", None)
    MODELS.unregister("plugin-model")
    MODELS._populated = True


PLUGIN_SOURCE = """
    from model_zoo.classical import PixelsAdapter

    class PluginModel(PixelsAdapter):
        name = "plugin-model"

    def register(registry):
        registry.register("plugin-model", PluginModel)
"""


def test_third_party_module_entry_point(plugin_path):
    source = """
        from model_zoo.classical import PixelsAdapter
        from ultrabench_eval.core.registry import register_model

        @register_model("plugin-model")
        class PluginModel(PixelsAdapter):
            name = "plugin-model"
    """
    _plugin(plugin_path, "ubench_plugin_demo", source)
    MODELS._populated = False
    assert "plugin-model" in MODELS.names()


def test_third_party_callable_entry_point(plugin_path):
    _plugin(plugin_path, "ubench_plugin_demo:register", PLUGIN_SOURCE)
    MODELS._populated = False
    adapter = MODELS.get("plugin-model")()
    assert adapter.name == "plugin-model"


def test_broken_plugin_warns_and_the_rest_still_load(plugin_path, capsys):
    _plugin(plugin_path, "ubench_plugin_demo", "raise RuntimeError('boom')\n")
    MODELS._populated = False
    assert "pixels" in MODELS.names()
    assert "model plug-in 'demo'" in capsys.readouterr().err
