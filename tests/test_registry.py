"""Finding a provider: built-ins by name, installed plugins by entry point, and module paths."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lancer.core.config import ModelConfig
from lancer.core.errors import ConfigError
from lancer.models import BUILTIN_PROVIDERS, create_model
from lancer.models.anthropic import AnthropicModel
from lancer.models.openai import OpenAICompatibleModel, OpenAIModel
from tests.fakes.conversation import ANTHROPIC_KEY, OPENAI_KEY

PLUGIN_SOURCE = """
from lancer.core.model import ModelResponse


class Parrot:
    supports_images = False

    def __init__(self, model_name, config):
        self.name = f"parrot:{model_name}"
        self.max_output_tokens = config.max_output_tokens

    def query(self, messages, tools):
        return ModelResponse(messages[-1].content)


class NotAModel:
    def __init__(self, model_name, config):
        pass
"""


@pytest.fixture
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``parrotpkg`` on sys.path, with ``parrot`` in the lancer.models group."""
    package = tmp_path / "parrotpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist = tmp_path / "parrotpkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: parrotpkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[lancer.models]\nparrot = parrotpkg.models:Parrot\nbroken = parrotpkg.missing:Nothing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_are_found_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    assert {"openai", "openai-compatible", "anthropic", "scripted", "replay"} <= set(BUILTIN_PROVIDERS)
    assert type(create_model("openai:gpt-4o")) is OpenAIModel
    assert type(create_model("openai-compatible:qwen2.5-coder:32b", ModelConfig(base_url="http://127.0.0.1:9/v1"))) is (
        OpenAICompatibleModel
    )
    model = create_model("anthropic:claude-sonnet-4-5")
    assert type(model) is AnthropicModel
    assert model.name == "anthropic:claude-sonnet-4-5"


def test_scripted_paths_with_dots_stay_scripted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "turns.v2.yaml").write_text("turns:\n  - tool_calls: [{name: submit, arguments: {}}]\n")
    monkeypatch.chdir(tmp_path)
    for spec in ("scripted:turns.v2.yaml", "scripted:./turns.v2.yaml", f"scripted:{tmp_path}/turns.v2.yaml"):
        assert create_model(spec).name.startswith("scripted:")


def test_an_installed_plugin_is_found_by_its_entry_point(plugin_package: Path) -> None:
    model = create_model("parrot:polly", ModelConfig(max_output_tokens=77))
    assert model.name == "parrot:polly"
    assert model.max_output_tokens == 77  # type: ignore[attr-defined]


def test_a_plugin_that_fails_to_load_is_named(plugin_package: Path) -> None:
    with pytest.raises(ConfigError, match=r"model provider 'broken' \(parrotpkg.missing:Nothing\) failed to load"):
        create_model("broken:x")


def test_unknown_providers_list_what_is_known(plugin_package: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        create_model("nosuch:model")
    message = str(caught.value)
    assert "unknown model provider 'nosuch'" in message
    for name in ("anthropic", "openai", "openai-compatible", "parrot", "scripted"):
        assert name in message


def test_a_module_path_needs_no_install(plugin_package: Path) -> None:
    assert create_model("parrotpkg.models:Parrot:polly").name == "parrot:polly"
    assert create_model("parrotpkg.models:Parrot").name == "parrot:"


def test_module_path_mistakes_are_config_errors(plugin_package: Path) -> None:
    with pytest.raises(ConfigError, match=r"parrotpkg\.models has no Budgie"):
        create_model("parrotpkg.models:Budgie")
    with pytest.raises(ConfigError, match=r"cannot import model provider nopkg\.models:X"):
        create_model("nopkg.models:X")
    with pytest.raises(ConfigError, match="names a module but no factory"):
        create_model("parrotpkg.models:")
    with pytest.raises(ConfigError, match="lacks name/supports_images/query"):
        create_model("parrotpkg.models:NotAModel")


def test_a_spec_without_a_model_is_refused() -> None:
    for spec in ("openai", "openai:", ":gpt-4o"):
        with pytest.raises(ConfigError, match="is not provider:model"):
            create_model(spec)
