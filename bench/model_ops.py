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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from thitogene_kedro.models import SectionBatch, build_model
from thitogene_kedro.models.dropout import dropout
from thitogene_kedro.models.odconv import ODConv2d
from thitogene_kedro.models.runtime import autocast, reuse_freed_host_memory
from thitogene_kedro.training.loop import LoopSettings, make_optimiser

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


def train_step(
    model: torch.nn.Module, batch: SectionBatch, optimiser, marks: list[float] | None = None, precision: str = "fp32"
) -> None:
    """One training step, as the training loop takes it (the forward under ``precision`` autocast, on
    the CPU); ``marks`` gets the clock before the forward pass and after the forward, the backward
    and the optimiser step."""
    clock = marks.append if marks is not None else lambda _: None
    clock(time.perf_counter())
    with autocast(torch.device("cpu"), precision):
        loss = model.loss_terms(batch, model.train()(batch))["loss"]
    clock(time.perf_counter())
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    clock(time.perf_counter())
    optimiser.step()
    clock(time.perf_counter())


def whole_step_rows(model: torch.nn.Module, batch: SectionBatch, repeats: int) -> list[Row]:
    """Training step (the training loop's fused Adam) and its forward/backward/optimiser phases; eval
    forward (inference)."""
    optimiser = make_optimiser(model, LoopSettings(epochs=1, lr=1e-5))
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "optimiser": []}

    def step(record: bool = False) -> None:
        marks: list[float] = []
        train_step(model, batch, optimiser, marks)
        if record:
            for name, start, end in zip(phases, marks, marks[1:], strict=False):
                phases[name].append(end - start)

    def inference() -> None:
        model.eval()
        with torch.no_grad():
            model(batch)

    step_flops = count_flops(step) - depthwise_overcount(model, n_spots(batch))
    forward_flops = count_flops(lambda: model.loss_terms(batch, model.train()(batch)))
    with reuse_freed_host_memory():  # as the training loop runs
        step()
        for _ in range(repeats):
            step(record=True)
        inference_times = repeated(inference, repeats)
    totals = [sum(parts) for parts in zip(*phases.values(), strict=True)]
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


def side_by_side(
    title: str, steps: Sequence[tuple[str, Callable[[], object]]], repeats: int, flops: bool = True
) -> tuple[Row, Row]:
    """The (naive, ours) rows of ``title``: each labelled step timed (and its FLOPs counted) in turn."""
    naive, ours = (
        Row(f"{title}, {label}", count_flops(step) if flops else 0, repeated(step, repeats)) for label, step in steps
    )
    return naive, ours


def _operation_pairs(model: torch.nn.Module, batch: SectionBatch, repeats: int) -> list[tuple[Row, Row]]:
    inputs = captured_inputs(model, batch)
    gat_input, edges, mask = inputs["gat"]
    gat_input = gat_input.clone().requires_grad_()

    def gat_step(implementation: str) -> None:
        for layer in (model.gat.attention_heads, model.gat.out_att):
            layer.implementation = implementation
        model.gat(gat_input, edges, mask).sum().backward()

    pairs = [
        side_by_side(
            "graph attention fwd+bwd",
            [("N×N dense", partial(gat_step, "dense")), ("neighbour list", partial(gat_step, "neighbour_list"))],
            repeats,
        )
    ]
    if hasattr(model, "caps_layer"):
        (features,) = inputs["caps_layer"]
        layouts = {"channels-first": torch.contiguous_format, "channels-last": torch.channels_last}
        laid_out = {name: features.clone().to(memory_format=f).requires_grad_() for name, f in layouts.items()}

        def caps_step(x: torch.Tensor) -> None:
            model.caps_layer(x).sum().backward()

        steps = [(name, partial(caps_step, x)) for name, x in laid_out.items()]
        pairs.append(side_by_side("capsule encoder fwd+bwd", steps, repeats))
    if hasattr(model, "odconv2d"):
        (pixels,) = inputs["odconv2d"]  # as in the model, the pixels need no gradient
        steps = [
            ("unfold, scaled input/output", lambda: naive_odconv(model.odconv2d, pixels).sum().backward()),
            ("channels-last blocks by reshape, folded", lambda: model.odconv2d(pixels).sum().backward()),
        ]
        pairs.append(side_by_side("ODConv fwd+bwd", steps, repeats))

    hidden = torch.randn(1, n_spots(batch), 8192, requires_grad=True)  # the GAT's hidden layer: 1 of 17 dropouts
    steps = [
        ("bernoulli_ mask (nn.Dropout)", lambda: F.dropout(hidden, 0.2, True).sum().backward()),
        ("uniform-draw mask", lambda: dropout(hidden, 0.2, True).sum().backward()),
    ]
    pairs.append(side_by_side(f"dropout fwd+bwd (1×{n_spots(batch)}×8192)", steps, repeats, flops=False))

    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimisers = [
        (name, torch.optim.Adam(model.parameters(), lr=1e-5, fused=fused, foreach=None if fused else True).step)
        for name, fused in (("foreach (default)", False), ("fused", True))
    ]
    pairs.append(side_by_side("Adam step", optimisers, repeats, flops=False))
    model.zero_grad(set_to_none=True)
    return pairs
