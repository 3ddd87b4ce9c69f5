"""The systems `trinityx bench` measures, behind one narrow interface, and their memory probe.

A `System` is a name, a greedy `generate(ids, mask, n) -> (B, n) new tokens` that always makes
exactly n tokens (min_new_tokens = max_new_tokens, so EOS never shortens a timed run) and the
modules whose parameters and buffers are its weights. `build_system(name, spec)` builds one from
a picklable `BenchSpec`, so a fresh spawn subprocess can rebuild it for an honest peak-memory
reading (`probe_memory`): peak RSS (VmHWM) minus the RSS before the build on CPU,
torch.cuda.max_memory_allocated minus the allocation before the build on CUDA.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from trinityx.config import BackboneConfig
from trinityx.model.backbone import load_backbone

SYSTEMS = (
    "base",
    "trinityx-token",
    "trinityx-sequence",
    "trinityx-merged",
    "h3fusion",
    "xlora",
    "ensemble",
)
# measured only when asked for (--systems), issue 15: the fused path that folding replaces, and
# token routing with every layer on its own A matmul (no sibling sharing, nn/siblings.py)
EXTRA_SYSTEMS = ("trinityx-sequence-unfolded", "trinityx-token-separate")


@dataclass
class BenchSpec:
    """Everything needed to rebuild a system in another process (plain data only)."""

    backbone: str
    device: str = "auto"
    dtype: str = "auto"
    cache_dir: str | None = None
    experts: dict[str, str] = field(default_factory=dict)  # name -> adapter folder
    merged_weights: list[float] | None = None  # gates folded in by the merged system
    seed: int = 0
    threads: int | None = None

    def backbone_cfg(self) -> BackboneConfig:
        return BackboneConfig(
            name=self.backbone, device=self.device, dtype=self.dtype, cache_dir=self.cache_dir
        )


@dataclass
class System:
    name: str
    generate: Callable[[Tensor, Tensor, int], Tensor]  # left-padded (B, T) -> new tokens (B, n)
    modules: list[nn.Module]  # parameters + buffers of these are the system's weights
    handle: object = None  # the built object (TrinityXModel, H3FusionModel, ...) for checks
    note: str = ""


def _hf_generate(model: nn.Module, pad_id: int | None) -> Callable[[Tensor, Tensor, int], Tensor]:
    def gen(ids: Tensor, mask: Tensor, n: int) -> Tensor:
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            min_new_tokens=n,
            max_new_tokens=n,
            pad_token_id=pad_id,
        )
        return out[:, ids.shape[1] :]

    return gen


def _trinityx(spec: BenchSpec, routing: str):
    from trinityx.model.composed import TrinityXModel

    bb = load_backbone(spec.backbone_cfg())
    return TrinityXModel.build(bb, spec.experts, routing, seed=spec.seed)


def _tx_system(name: str, tx, fold: bool | None = None) -> System:
    def gen(ids: Tensor, mask: Tensor, n: int) -> Tensor:
        res = tx.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            min_new_tokens=n,
            max_new_tokens=n,
            return_routing=False,
            fold=fold,
        )
        return res.sequences[:, res.prompt_length :]

    mods = [tx.model] + ([tx.sequence_router] if tx.sequence_router is not None else [])
    how = "" if fold is None else f", fold={fold}"
    return System(name, gen, mods, tx, f"generate(return_routing=False{how})")


def build_system(name: str, spec: BenchSpec) -> System:
    """Build one of SYSTEMS from `spec` (experts from spec.experts, in their order)."""
    if name == "base":
        bb = load_backbone(spec.backbone_cfg())
        return System(name, _hf_generate(bb.model, bb.tokenizer.pad_token_id), [bb.model], bb)
    if name == "trinityx-token":
        return _tx_system(name, _trinityx(spec, "token"))
    if name == "trinityx-sequence":
        return _tx_system(name, _trinityx(spec, "sequence"))
    if name == "trinityx-sequence-unfolded":
        return _tx_system(name, _trinityx(spec, "sequence"), fold=False)
    if name == "trinityx-token-separate":
        from trinityx.nn.siblings import ungroup

        tx = _trinityx(spec, "token")
        ungroup(tx.layers)
        system = _tx_system(name, tx)
        system.note += ", siblings unshared"
        return system
    if name == "trinityx-merged":
        from trinityx.model.export import merged_state

        if spec.merged_weights is None:
            raise ValueError("trinityx-merged needs spec.merged_weights (K gates)")
        tx = _trinityx(spec, "none")
        merged = merged_state(tx, spec.merged_weights, allow_negative=True).eval()
        pad = tx.tokenizer.pad_token_id
        del tx
        gc.collect()
        return System(name, _hf_generate(merged, pad), [merged], merged, "export.merged_state")
    if name == "h3fusion":
        from trinityx.model.baselines.h3fusion import build_h3fusion

        h3 = build_h3fusion(load_backbone(spec.backbone_cfg()), spec.experts, seed=spec.seed)
        gen = _hf_generate(h3.model, h3.tokenizer.pad_token_id)
        return System(name, gen, [h3.model], h3, "K FFN copies, top-2 gate (untrained)")
    if name == "xlora":
        from trinityx.model.baselines.xlora import build_xlora

        xl = build_xlora(load_backbone(spec.backbone_cfg()), spec.experts)
        gen = _hf_generate(xl.model, xl.tokenizer.pad_token_id)
        return System(name, gen, [xl.model], xl, "PEFT X-LoRA, no KV cache (PEFT requires it)")
    if name == "ensemble":
        from trinityx.model.baselines.ensemble import build_ensemble

        ens = build_ensemble(load_backbone(spec.backbone_cfg()), spec.experts)

        def gen(ids: Tensor, mask: Tensor, n: int) -> Tensor:
            return ens.generate(ids, mask, max_new_tokens=n)[:, ids.shape[1] :]

        return System(name, gen, ens.members, ens, "K merged models, greedy loop, KV cache each")
    raise ValueError(f"unknown system {name!r}; choose from {SYSTEMS + EXTRA_SYSTEMS}")


def count_params(modules: list[nn.Module]) -> tuple[int, int]:
    """(number of values, bytes) over the distinct parameters and buffers of `modules`.

    Tied / shared tensors count once (keyed by storage pointer, offset and shape).
    """
    seen: set[tuple] = set()
    n = nbytes = 0
    for m in modules:
        for t in [*m.parameters(), *m.buffers()]:
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
            if key in seen:
                continue
            seen.add(key)
            n += t.numel()
            nbytes += t.numel() * t.element_size()
    return n, nbytes


def weight_storage(modules: list[nn.Module]) -> dict:
    """How a system holds its weights: dtypes, device and the bytes read through a file mapping.

    The honest floor of issue 15: every system, base included, must hold its weights the same
    way (in process memory, one dtype), or speed ratios compare memory layouts, not systems.
    """
    mapped: list[tuple[int, int]] = []
    maps = Path("/proc/self/maps")
    if maps.exists():
        for line in maps.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[5].startswith("/") and "-" in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if parts[5].endswith((".safetensors", ".bin", ".pt", ".gguf")):
                    mapped.append((lo, hi))
    dtypes: set[str] = set()
    devices: set[str] = set()
    mapped_bytes = 0
    seen: set[int] = set()
    for m in modules:
        for t in m.parameters():
            if t.data_ptr() in seen:
                continue
            seen.add(t.data_ptr())
            dtypes.add(str(t.dtype).removeprefix("torch."))
            devices.add(t.device.type)
            if any(lo <= t.data_ptr() < hi for lo, hi in mapped):
                mapped_bytes += t.numel() * t.element_size()
    return {"dtypes": sorted(dtypes), "devices": sorted(devices), "file_mapped_bytes": mapped_bytes}


# --------------------------------------------------------------------------- memory probe
def _status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _probe_child(name: str, spec: BenchSpec, ids: list, mask: list, n: int) -> dict:
    """Runs in a fresh spawn process: build one system, decode once, report memory in MB."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    dev = spec.backbone_cfg()
    cuda = dev.device == "cuda" or (dev.device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.init()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        gc.collect()
        before, reset = _status_kb("VmRSS"), _reset_peak_rss()
    system = build_system(name, spec)
    gc.collect()
    if cuda:
        after_build = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        after_build = _status_kb("VmRSS")
        build_peak = _status_kb("VmHWM")
        reset = _reset_peak_rss() and reset
    dev_t = next(system.modules[0].parameters()).device
    with torch.no_grad():
        system.generate(torch.tensor(ids, device=dev_t), torch.tensor(mask, device=dev_t), n)
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {
            "how": "cuda max_memory_allocated - allocated before build",
            "model_mb": (after_build - before) / 2**20,
            "peak_mb": (max(peak, after_build) - before) / 2**20,
        }
    peak = _status_kb("VmHWM")
    return {
        "how": "CPU VmHWM - VmRSS before build, fresh spawn process"
        + ("" if reset else " (peak not reset after build: includes build transients)"),
        "model_mb": (after_build - before) / 1024,
        "peak_mb": (max(peak, after_build) - before) / 1024,
        "build_peak_mb": (build_peak - before) / 1024,
    }


def probe_memory(name: str, spec: BenchSpec, ids: Tensor, mask: Tensor, n: int) -> dict:
    """Peak memory of one system in a fresh spawn subprocess (see `_probe_child`).

    glibc is told to serve large allocations by mmap (MALLOC_MMAP_THRESHOLD_), so memory freed
    after the build (e.g. merged_state's temporary composed model) goes back to the OS instead of
    staying in the heap and inflating the reading.
    """
    import multiprocessing as mp

    env = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
            return pool.apply(_probe_child, (name, spec, ids.tolist(), mask.tolist(), n))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
