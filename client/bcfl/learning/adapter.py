"""LoRA adapters as plain tensors and as PEFT's own two files.

An `AdapterState` is the ordered mapping PEFT saves (`base_model.model.<module>.lora_A.weight`
-> fp32 tensor) with the LoRA settings. `to_files` gives exactly the bytes of
`adapter_model.safetensors` and `adapter_config.json` (the same tensors always give the same
bytes, so the same CID); anyone can write them to a folder and call `PeftModel.from_pretrained`.
`from_files` checks untrusted files against the base model before any tensor is used:
settings, target modules, the exact set of keys, shapes, dtype, and that every value is finite.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from bcfl.errors import BcflError

if TYPE_CHECKING:
    from bcfl.learning.model import BaseModel

ADAPTER_MODEL = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
KEY_PREFIX = "base_model.model."
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


class AdapterError(BcflError):
    """An adapter that does not fit the base model or is not well formed."""


@dataclass(frozen=True)
class LoraSpec:
    """The LoRA settings every peer of a federation shares."""

    rank: int = 8
    alpha: float = 16.0  # scaling is alpha / rank
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    dropout: float = 0.0  # no dropout keeps training a pure function of the seed

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {self.rank}")
        if not self.alpha > 0:
            raise ValueError(f"LoRA alpha must be positive, got {self.alpha}")
        if not self.target_modules or any(not t or not isinstance(t, str) for t in self.target_modules):
            raise ValueError(f"target_modules must be non-empty names, got {self.target_modules!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "target_modules", tuple(sorted(set(self.target_modules))))

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_peft(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,  # type: ignore[arg-type]  # PEFT accepts any number
            target_modules=list(self.target_modules),
            lora_dropout=self.dropout,
            bias="none",
            task_type="CAUSAL_LM",
        )

    def config_json(self) -> dict[str, Any]:
        """adapter_config.json: only what defines the adapter, so the bytes do not depend on the
        peft version; PEFT fills every other field with its default when it loads the file."""
        alpha: float | int = int(self.alpha) if float(self.alpha).is_integer() else self.alpha
        return {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": self.rank,
            "lora_alpha": alpha,
            "lora_dropout": self.dropout,
            "target_modules": list(self.target_modules),
            "bias": "none",
            "fan_in_fan_out": False,
            "inference_mode": True,
        }


@dataclass(frozen=True, eq=False)
class AdapterState:
    """LoRA factors by PEFT state-dict name (sorted), all fp32 and contiguous."""

    spec: LoraSpec
    tensors: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean = {k: self.tensors[k].detach().to(torch.float32).contiguous() for k in sorted(self.tensors)}
        object.__setattr__(self, "tensors", clean)

    @property
    def num_parameters(self) -> int:
        return sum(t.numel() for t in self.tensors.values())

    def modules(self) -> list[str]:
        """Module paths (without the key prefix) that carry an A/B pair."""
        return sorted({k[len(KEY_PREFIX) :].rsplit(".lora_", 1)[0] for k in self.tensors})

    def replace(self, tensors: Mapping[str, torch.Tensor]) -> AdapterState:
        return AdapterState(self.spec, tensors)


def key_a(module: str) -> str:
    return f"{KEY_PREFIX}{module}.lora_A.weight"


def key_b(module: str) -> str:
    return f"{KEY_PREFIX}{module}.lora_B.weight"


def expected_shapes(base: BaseModel, spec: LoraSpec) -> dict[str, tuple[int, ...]]:
    """Every key an adapter with `spec` must hold for `base`, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, module in base.model.named_modules():
        if name.rsplit(".", 1)[-1] in spec.target_modules and isinstance(module, torch.nn.Linear):
            shapes[key_a(name)] = (spec.rank, module.in_features)
            shapes[key_b(name)] = (module.out_features, spec.rank)
    if not shapes:
        raise AdapterError(
            f"target modules {', '.join(spec.target_modules)} match no linear layer of {base.name}"
        )
    return dict(sorted(shapes.items()))


A_INITS = ("random", "svd")


def init_adapter(base: BaseModel, spec: LoraSpec, seed: int, *, a_init: str = "random") -> AdapterState:
    """The shared starting adapter, B zero, so the start changes nothing. A is drawn from a
    seeded generator (`random`: PEFT's default kaiming-uniform range, bound 1/sqrt(fan_in)), so
    every peer that uses the same seed starts from the same bits; or (`svd`) A's rows are the
    top-r right singular vectors of the base layer's weight, the directions the layer responds
    to most, scaled to the random rows' expected norm (1/sqrt(3)). A frozen A (the exact
    scheme) keeps its rows for the whole federation, which is why their choice matters. The
    `svd` start is computed once (e.g. into the genesis adapter); LAPACK builds may differ in
    the last bits, so peers take it from that file, not by recomputing it."""
    if a_init not in A_INITS:
        raise ValueError(f"a_init must be one of {', '.join(A_INITS)}, got {a_init!r}")
    gen = torch.Generator().manual_seed(seed)
    weights = (
        {key_a(n): m.weight for n, m in base.model.named_modules() if isinstance(m, torch.nn.Linear)}
        if a_init == "svd"
        else {}
    )
    tensors: dict[str, torch.Tensor] = {}
    for key, shape in expected_shapes(base, spec).items():
        if ".lora_A." in key and a_init == "svd":
            w = weights[key].detach().to(torch.float64)
            _, _, vh = torch.linalg.svd(w, full_matrices=False)
            tensors[key] = (vh[: shape[0]] / math.sqrt(3.0)).to(torch.float32).contiguous()
        elif ".lora_A." in key:
            bound = 1.0 / math.sqrt(shape[1])
            tensors[key] = (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound
        else:
            tensors[key] = torch.zeros(shape, dtype=torch.float32)
    return AdapterState(spec, tensors)


# ------------------------------------------------------------------ files


def to_files(state: AdapterState) -> dict[str, bytes]:
    """PEFT's two adapter files, byte-deterministic."""
    from safetensors.torch import save

    model = save(dict(state.tensors), metadata={"format": "pt"})
    config = json.dumps(state.spec.config_json(), sort_keys=True, indent=2) + "\n"
    return {ADAPTER_CONFIG: config.encode("utf-8"), ADAPTER_MODEL: model}


def spec_from_config(raw: bytes) -> LoraSpec:
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{ADAPTER_CONFIG}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise AdapterError(f"{ADAPTER_CONFIG}: expected a JSON object")
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"{ADAPTER_CONFIG}: peft_type is {config.get('peft_type')!r}, expected 'LORA'")
    for flag in ("use_dora", "use_rslora", "fan_in_fan_out", "lora_bias"):
        if config.get(flag):
            raise AdapterError(f"{ADAPTER_CONFIG}: {flag}=true is not supported")
    if config.get("bias", "none") != "none" or config.get("modules_to_save"):
        raise AdapterError(f"{ADAPTER_CONFIG}: bias or modules_to_save would train more than LoRA factors")
    if config.get("rank_pattern") or config.get("alpha_pattern") or config.get("layers_to_transform"):
        raise AdapterError(f"{ADAPTER_CONFIG}: per-layer ranks or layer selections are not supported")
    targets = config.get("target_modules")
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise AdapterError(
            f"{ADAPTER_CONFIG}: target_modules must be a list of module names, got {targets!r}"
        )
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if not isinstance(rank, int) or isinstance(rank, bool) or not isinstance(alpha, int | float):
        raise AdapterError(f"{ADAPTER_CONFIG}: r must be an integer and lora_alpha a number")
    try:
        return LoraSpec(rank, float(alpha), tuple(targets), float(config.get("lora_dropout", 0.0)))
    except (ValueError, TypeError) as exc:
        raise AdapterError(f"{ADAPTER_CONFIG}: {exc}") from None


def from_files(
    files: Mapping[str, bytes], base: BaseModel, *, expect: LoraSpec | None = None
) -> AdapterState:
    """An adapter from its two files, checked against `base` (and `expect`, if given)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    missing = [name for name in (ADAPTER_CONFIG, ADAPTER_MODEL) if name not in files]
    if missing:
        raise AdapterError(f"adapter is missing {', '.join(missing)}")
    extra = sorted(set(files) - {ADAPTER_CONFIG, ADAPTER_MODEL})
    if extra:
        raise AdapterError(f"adapter holds unexpected files: {', '.join(extra)}")
    spec = spec_from_config(files[ADAPTER_CONFIG])
    if expect is not None and spec != expect:
        raise AdapterError(f"{ADAPTER_CONFIG}: LoRA settings {spec} differ from the federation's {expect}")
    expected = expected_shapes(base, spec)
    try:
        tensors = load(files[ADAPTER_MODEL])
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise AdapterError(f"{ADAPTER_MODEL}: not valid safetensors ({exc})") from None
    unknown = sorted(set(tensors) - set(expected))
    if unknown:
        raise AdapterError(f"{ADAPTER_MODEL}: tensor {unknown[0]} is not a LoRA factor of {base.name}")
    absent = sorted(set(expected) - set(tensors))
    if absent:
        raise AdapterError(f"{ADAPTER_MODEL}: tensor {absent[0]} is missing")
    for key, shape in expected.items():
        tensor = tensors[key]
        if tensor.dtype != torch.float32:
            raise AdapterError(f"{ADAPTER_MODEL}: tensor {key} has dtype {tensor.dtype}, expected float32")
        if tuple(tensor.shape) != shape:
            raise AdapterError(
                f"{ADAPTER_MODEL}: tensor {key} has shape {tuple(tensor.shape)}, expected {shape}"
            )
        if not bool(torch.isfinite(tensor).all()):
            raise AdapterError(f"{ADAPTER_MODEL}: tensor {key} holds NaN or Inf")
    return AdapterState(spec, tensors)


# ------------------------------------------------------------------ on the model


@contextmanager
def applied(base: BaseModel, state: AdapterState) -> Iterator[Any]:
    """The base model with `state` injected as a PEFT model; removed again on exit, leaving the
    base model's own weights untouched."""
    from peft import get_peft_model, set_peft_model_state_dict

    with warnings.catch_warnings():
        # PEFT calls a transformers property that transformers 5 deprecates; not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(base.model, state.spec.to_peft())
    try:
        result = set_peft_model_state_dict(peft_model, dict(state.tensors))
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        missing = [k for k in getattr(result, "missing_keys", []) or [] if "lora_" in k]
        if unexpected or missing:
            raise AdapterError(
                f"adapter does not fit {base.name}: unexpected {unexpected[:2]} missing {missing[:2]}"
            )
        yield peft_model
    finally:
        peft_model.unload()
        base.model.requires_grad_(False)
        base.model.eval()


@contextmanager
def _swapped_weights(
    base: BaseModel, modules: Sequence[str], new_weight: Callable[[str, torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Each named linear layer's weight replaced by `new_weight(module, weight)` (a new tensor,
    never part of a graph); the original tensors are swapped back on exit, so the base model is
    untouched bit for bit, also when `new_weight` raises for a later layer."""
    originals: dict[str, torch.Tensor] = {}
    try:
        for module in modules:
            layer = base.model.get_submodule(module)
            original = layer.weight.data
            with torch.no_grad():
                replacement = new_weight(module, original)
            originals[module] = original
            layer.weight.data = replacement
        yield
    finally:
        for module, original in originals.items():
            base.model.get_submodule(module).weight.data = original


@contextmanager
def merged(base: BaseModel, state: AdapterState) -> Iterator[Any]:
    """The base model with `state` folded into its weights, W + scaling x B @ A, for inference:
    one matmul per adapted layer instead of PEFT's three, and no wrapper modules to inject; the
    original weights are back on exit."""

    def folded(module: str, weight: torch.Tensor) -> torch.Tensor:
        a, b = state.tensors[key_a(module)], state.tensors[key_b(module)]
        if (b.shape[0], a.shape[1]) != tuple(weight.shape) or b.shape[1] != a.shape[0]:
            raise AdapterError(
                f"adapter factors for {module} ({tuple(b.shape)} @ {tuple(a.shape)}) do not fit "
                f"the layer {tuple(weight.shape)}"
            )
        return torch.addmm(weight, b.to(weight.dtype), a.to(weight.dtype), alpha=state.spec.scaling)

    with _swapped_weights(base, state.modules(), folded):
        base.model.eval()
        yield base.model


@contextmanager
def shifted(base: BaseModel, change: Mapping[str, torch.Tensor]) -> Iterator[BaseModel]:
    """`base` with dense weight changes added to the named linear layers (e.g. an exact
    aggregate's residual); the original weights are back on exit, bit for bit."""

    def plus(module: str, weight: torch.Tensor) -> torch.Tensor:
        delta = change[module]
        if tuple(delta.shape) != tuple(weight.shape):
            raise AdapterError(
                f"change for {module} has shape {tuple(delta.shape)}, the layer {tuple(weight.shape)}"
            )
        return weight + delta.to(weight.dtype)

    with _swapped_weights(base, list(change), plus):
        yield base


def state_of(peft_model: Any, spec: LoraSpec) -> AdapterState:
    """The adapter held by a PEFT model, as an AdapterState (copied)."""
    from peft import get_peft_model_state_dict

    raw = get_peft_model_state_dict(peft_model)
    return AdapterState(spec, {k: v.detach().clone() for k, v in raw.items()})
