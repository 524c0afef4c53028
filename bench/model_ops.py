"""In-process measurements of one model on one section: whole step, its phases, its modules, and the
naive formulations the project replaced, each against the arithmetic floor.

Every row has the FLOPs PyTorch's flop counter finds for the operation (matmul/conv as 2·MAC; the
depthwise primary-capsule convolution's backward is overcounted by the counter, which ignores
``groups``, and corrected here), the median and spread of ``repeats`` timed runs after one warm-up,
and ``median / floor`` with floor = FLOPs ÷ the machine's measured fp32 matmul rate.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from thitogene_kedro.models import SectionBatch, build_model
from thitogene_kedro.models.dropout import dropout
from thitogene_kedro.models.odconv import ODConv2d
from thitogene_kedro.models.runtime import reuse_freed_host_memory
from thitogene_kedro.pipelines.training.loop import LoopSettings, make_optimiser

COMPONENTS = ("odconv2d", "caps_layer", "vit", "gat", "gene_head")


@dataclass
class Row:
    """One measured operation."""

    name: str
    flops: int
    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def floor(self, rate: float) -> float:
        return self.flops / rate


def matmul_rate(size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32, device: str = "cpu") -> float:
    """Measured matmul FLOP/s (best of ``repeats``) for ``size``² × ``size`` in ``dtype``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    return 2 * size**3 / min(timed(lambda: a @ b, device) for _ in range(repeats))


def timed(fn: Callable[[], object], device: str = "cpu") -> float:
    """Wall seconds of one call (synchronised on CUDA)."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def repeated(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up
    return [timed(fn) for _ in range(repeats)]


def count_flops(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with torch.backends.mkldnn.flags(enabled=False), sdpa_kernel(SDPBackend.MATH), counter:
        fn()
    return counter.get_total_flops()


def n_spots(batch: SectionBatch) -> int:
    return int(batch.mask.sum())


def depthwise_overcount(model: torch.nn.Module, n_spots: int) -> int:
    """FLOPs the counter adds to the depthwise primary-capsule convolution's backward."""
    if not hasattr(model, "caps_layer"):
        return 0
    conv = model.caps_layer.primary_caps.depthwise_conv
    return 2 * n_spots * conv.in_channels * conv.kernel_size[0] ** 2 * (conv.groups - 1)


def paper_model(n_genes: int, preset: str, gat: str = "neighbour_list", **overrides: object) -> torch.nn.Module:
    """THItoGene of ``preset``, seeded, with the given graph-attention implementation and overrides."""
    torch.manual_seed(0)
    overrides = {"gat": {"implementation": gat}, **overrides}
    return build_model({"name": "thitogene", "preset": preset, "overrides": overrides}, n_genes)


def train_step(model: torch.nn.Module, batch: SectionBatch, optimiser) -> None:
    """One training step, as the training loop takes it."""
    loss = model.loss_terms(batch, model.train()(batch))["loss"]
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def whole_step_rows(model: torch.nn.Module, batch: SectionBatch, repeats: int) -> list[Row]:
    """Training step (the training loop's fused Adam) and its forward/backward/optimiser phases; eval
    forward (inference)."""
    optimiser = make_optimiser(model, LoopSettings(epochs=1, lr=1e-5))
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "optimiser": []}

    def step(record: bool = False) -> None:
        model.train()
        t0 = time.perf_counter()
        loss = model.loss_terms(batch, model(batch))["loss"]
        t1 = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        optimiser.step()
        t3 = time.perf_counter()
        if record:
            for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                phases[name].append(seconds)

    def inference() -> None:
        model.eval()
        with torch.no_grad():
            model(batch)

    step_flops = count_flops(step) - depthwise_overcount(model, n_spots(batch))
    forward_flops = count_flops(lambda: model.loss_terms(batch, model.train()(batch)))
    totals = []
    with reuse_freed_host_memory():  # as the training loop runs
        step()
        for _ in range(repeats):
            start = time.perf_counter()
            step(record=True)
            totals.append(time.perf_counter() - start)
        inference_times = repeated(inference, repeats)
    model.zero_grad(set_to_none=True)
    return [
        Row("training step (fwd+bwd+Adam)", step_flops, totals),
        Row("· forward (train mode)", forward_flops, phases["forward"]),
        Row("· backward", step_flops - forward_flops, phases["backward"]),
        Row("· Adam (fused)", 0, phases["optimiser"]),
        Row("inference (eval forward)", count_flops(inference), inference_times),
    ]


def captured_inputs(model: torch.nn.Module, batch: SectionBatch) -> dict[str, tuple]:
    """The inputs each top-level component receives in a training-mode forward."""
    captured: dict[str, tuple] = {}
    hooks = [
        getattr(model, name).register_forward_hook(lambda m, args, out, name=name: captured.__setitem__(name, args))
        for name in COMPONENTS
        if hasattr(model, name)
    ]
    with torch.no_grad():
        model.train()(batch)
    for hook in hooks:
        hook.remove()
    return {
        name: tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args) for name, args in captured.items()
    }


def module_rows(model: torch.nn.Module, batch: SectionBatch, repeats: int) -> list[Row]:
    """Forward + backward of each component alone, on the inputs it gets in the model."""
    rows = []
    for name, args in captured_inputs(model, batch).items():
        module = getattr(model, name).train()
        needs_grad = name != "odconv2d"  # the model's first layer: its pixels need no gradient
        inputs = tuple(
            a.requires_grad_(needs_grad and a.is_floating_point()) if isinstance(a, torch.Tensor) else a for a in args
        )

        def forward_backward(module=module, inputs=inputs) -> None:
            out = module(*inputs)
            out.backward(torch.ones_like(out))

        flops = count_flops(forward_backward)
        if name == "caps_layer":
            flops -= depthwise_overcount(model, n_spots(batch))
        with reuse_freed_host_memory():  # as the training loop runs
            rows.append(Row(f"· {name} fwd+bwd", flops, repeated(forward_backward, repeats)))
        module.zero_grad(set_to_none=True)
    return rows


def naive_odconv(module: ODConv2d, x: torch.Tensor) -> torch.Tensor:
    """ODConv as written in the reference: scale the input, unfold, per-sample kernels, scale the output."""
    channel, filters, spatial, kernel = module.attention(x)
    m, k = x.shape[0], module.kernel_size
    weight = torch.einsum("mn,mab,nocab->mocab", kernel, spatial, module.weight).reshape(m, module.out_channels, -1)
    columns = F.unfold(x * channel[:, :, None, None], k, stride=module.stride, padding=module.padding)
    out = torch.bmm(weight, columns)
    side = (x.shape[-1] + 2 * module.padding - k) // module.stride + 1
    return out.view(m, module.out_channels, side, side) * filters[:, :, None, None]


def allocator_pair(model: torch.nn.Module, batch: SectionBatch, repeats: int) -> tuple[Row, Row]:
    """Training steps with glibc's default allocator settings, then with freed host memory reused.

    Run it before anything else in the process enters :func:`reuse_freed_host_memory`, which leaves
    glibc's thresholds at their settled values rather than their fresh-process dynamic state.
    """
    optimiser = make_optimiser(model, LoopSettings(epochs=1, lr=1e-5))

    def step() -> None:
        train_step(model, batch, optimiser)

    rows = []
    for reuse in (False, True):
        label = "freed host memory reused" if reuse else "glibc default (large buffers unmapped on free)"
        with reuse_freed_host_memory(reuse):
            rows.append(Row(f"training step, {label}", 0, repeated(step, repeats)))
    model.zero_grad(set_to_none=True)
    return rows[0], rows[1]


def comparison_rows(model: torch.nn.Module, batch: SectionBatch, repeats: int) -> list[tuple[Row, Row]]:
    """(naive, ours) pairs measured side by side: graph attention, the capsule encoder's memory
    layout, ODConv, dropout, Adam."""
    with reuse_freed_host_memory():  # as the training loop runs
        return _operation_pairs(model, batch, repeats)


def _operation_pairs(model: torch.nn.Module, batch: SectionBatch, repeats: int) -> list[tuple[Row, Row]]:
    inputs = captured_inputs(model, batch)
    pairs = []

    gat_input, edges, mask = inputs["gat"]
    gat_rows = []
    for implementation in ("dense", "neighbour_list"):
        for layer in (model.gat.attention_heads, model.gat.out_att):
            layer.implementation = implementation
        x = gat_input.clone().requires_grad_()

        def gat_step(x=x) -> None:
            model.gat(x, edges, mask).sum().backward()

        label = "N×N dense" if implementation == "dense" else "neighbour list"
        gat_rows.append(Row(f"graph attention fwd+bwd, {label}", count_flops(gat_step), repeated(gat_step, repeats)))
    pairs.append((gat_rows[0], gat_rows[1]))

    if hasattr(model, "caps_layer"):
        (features,) = inputs["caps_layer"]
        caps_rows = []
        for label, memory_format in (
            ("channels-first", torch.contiguous_format),
            ("channels-last", torch.channels_last),
        ):
            x = features.clone().to(memory_format=memory_format).requires_grad_()

            def caps_step(x=x) -> None:
                model.caps_layer(x).sum().backward()

            caps_rows.append(
                Row(f"capsule encoder fwd+bwd, {label}", count_flops(caps_step), repeated(caps_step, repeats))
            )
        pairs.append((caps_rows[0], caps_rows[1]))

    if hasattr(model, "odconv2d"):
        (pixels,) = inputs["odconv2d"]
        x = pixels.clone()  # as in the model, the pixels need no gradient
        odconv_rows = []
        for label, fn in (
            ("unfold, scaled input/output", naive_odconv),
            ("channels-last blocks by reshape, folded", None),
        ):

            def odconv_step(fn=fn, x=x) -> None:
                out = fn(model.odconv2d, x) if fn else model.odconv2d(x)
                out.sum().backward()

            odconv_rows.append(
                Row(f"ODConv fwd+bwd, {label}", count_flops(odconv_step), repeated(odconv_step, repeats))
            )
        pairs.append((odconv_rows[0], odconv_rows[1]))

    hidden = torch.randn(1, n_spots(batch), 8192, requires_grad=True)  # the GAT's hidden layer: 1 of 17 dropouts
    drop_rows = []
    for label, fn in (("bernoulli_ mask (nn.Dropout)", F.dropout), ("uniform-draw mask", dropout)):

        def drop_step(fn=fn) -> None:
            fn(hidden, 0.2, True).sum().backward()

        drop_rows.append(Row(f"dropout fwd+bwd (1×{n_spots(batch)}×8192), {label}", 0, repeated(drop_step, repeats)))
    pairs.append((drop_rows[0], drop_rows[1]))

    adam_rows = []
    for fused in (False, True):
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-5, fused=fused, foreach=None if fused else True)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        adam_rows.append(
            Row(f"Adam step, {'fused' if fused else 'foreach (default)'}", 0, repeated(optimiser.step, repeats))
        )
        del optimiser
    model.zero_grad(set_to_none=True)
    pairs.append((adam_rows[0], adam_rows[1]))
    return pairs
