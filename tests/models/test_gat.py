"""GAT options behave as reference-spec §1.4 describes; neighbour lists equal the dense formulation."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from thitogene_kedro.models.batch import dense_adjacency
from thitogene_kedro.models.gat import GraphAttention, MultiHeadGAT, _EdgeAggregation, graph_edges

IMPLEMENTATIONS = ["neighbour_list", "dense"]


def chain_graph(n: int) -> torch.Tensor:
    """Edges ``[spot, neighbour]``: spot i lists i+1 and i+2 (wrapping)."""
    spots = torch.arange(n)
    return torch.stack([spots.repeat(2), torch.cat([(spots + 1) % n, (spots + 2) % n])])


def layer(axis: str, self_loops: bool, implementation: str = "dense", heads: int = 2) -> GraphAttention:
    torch.manual_seed(0)
    return GraphAttention(
        6,
        5,
        heads,
        dropout=0.0,
        leaky_relu_slope=0.01,
        softmax_axis=axis,
        self_loops=self_loops,
        implementation=implementation,
    ).eval()


def dense_alpha(gat: GraphAttention, x: torch.Tensor, edges: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return gat.attention(gat.project(x).permute(0, 2, 1, 3), dense_adjacency(edges, mask), mask)


def test_neighbours_axis_normalises_each_spots_neighbours():
    gat = layer("neighbours", self_loops=False)
    edges, mask = chain_graph(7), torch.ones(1, 7, dtype=torch.bool)
    alpha = dense_alpha(gat, torch.randn(1, 7, 6), edges, mask)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(1, 2, 7))
    assert (alpha[:, :, ~dense_adjacency(edges, mask)[0]] == 0).all()  # nothing off the graph, not even the diagonal


def test_receivers_axis_normalises_over_the_spots_that_list_a_neighbour():
    gat = layer("receivers", self_loops=False)
    edges = torch.tensor([[1, 3, 4, 2], [2, 2, 2, 1]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    alpha = dense_alpha(gat, torch.randn(1, 5, 6), edges, mask)
    torch.testing.assert_close(alpha[0, :, :, 2].sum(-1), torch.ones(2))  # column 2 sums to 1 over 1, 3, 4
    assert alpha[0, :, [1, 3, 4], 2].min() > 0
    # spots 0, 3, 4 are listed by nobody: their columns become uniform 1/N and leak into every spot
    torch.testing.assert_close(alpha[0, :, :, 0], torch.full((2, 5), 0.2))
    row_sums = alpha.sum(-1)
    assert row_sums.max() > 1.5 and row_sums.min() < 1  # rows no longer sum to 1


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_self_loops_decide_whether_a_spot_sees_its_own_features(implementation):
    """Each spot lists one neighbour (i → i+1), so without self-loops its weight is 1 whatever h_i is."""
    n = 8
    edges = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
    mask = torch.ones(1, n, dtype=torch.bool)
    x = torch.randn(1, n, 6)
    changed = x.clone()
    changed[0, 3] += 5.0  # spot 3 is listed by spot 2 only
    for self_loops in (False, True):
        gat = layer("neighbours", self_loops, implementation)
        delta = (gat(changed, edges, mask) - gat(x, edges, mask)).abs().amax(dim=(0, 2, 3))
        affected = set(torch.nonzero(delta > 1e-6).flatten().tolist())
        assert affected == ({2, 3} if self_loops else {2})


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("axis", ["neighbours", "receivers"])
def test_padded_spots_get_and_give_nothing(axis, implementation):
    gat = layer(axis, self_loops=False, implementation=implementation)
    edges = chain_graph(6)
    x = torch.randn(1, 6, 6)
    padded_x = torch.cat([x, torch.randn(1, 3, 6) * 50], dim=1)
    mask = torch.tensor([[True] * 6 + [False] * 3])
    out = gat(padded_x, edges, mask)
    torch.testing.assert_close(out[:, :6], gat(x, edges, torch.ones(1, 6, dtype=torch.bool)))
    assert (out[:, 6:] == 0).all()


def test_options_change_the_paper_gat_output():
    """Reference column normalisation differs from row normalisation (spec: max |Δ| ≈ 1.3 at init)."""
    x, edges, mask = torch.randn(1, 40, 64), chain_graph(40), torch.ones(1, 40, dtype=torch.bool)
    outputs = {}
    for axis in ("neighbours", "receivers"):
        torch.manual_seed(0)
        outputs[axis] = MultiHeadGAT(
            64, 32, 16, heads=4, dropout=0.2, leaky_relu_slope=0.01, softmax_axis=axis, self_loops=False
        ).eval()(x, edges, mask)
    assert (outputs["neighbours"] - outputs["receivers"]).abs().max() > 1e-2


def random_graphs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two padded sections with random directed edges of varying degree, isolated and unlisted spots,
    duplicate edges and existing self-loops: ``(edge_index over B·N spots, mask)``."""
    generator = torch.Generator().manual_seed(seed)
    sizes, n = (23, 17), 23
    mask = torch.zeros(2, n, dtype=torch.bool)
    edges = []
    for b, size in enumerate(sizes):
        mask[b, :size] = True
        count = int(torch.randint(size, 4 * size, (), generator=generator))
        pairs = torch.randint(0, size, (2, count), generator=generator)
        pairs = pairs[:, pairs[0] % 5 != 0]  # every fifth spot lists nobody
        edges.append(torch.cat([pairs, pairs[:, :3]], dim=1) + b * n)  # with duplicates
    return torch.cat(edges, dim=1), mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("axis", ["neighbours", "receivers"])
@pytest.mark.parametrize("self_loops", [True, False])
def test_neighbour_lists_equal_the_dense_formulation_on_random_graphs(seed, axis, self_loops):
    edges, mask = random_graphs(seed)
    x = torch.randn(2, mask.shape[1], 12, generator=torch.Generator().manual_seed(seed))
    results = {}
    for implementation in IMPLEMENTATIONS:
        torch.manual_seed(0)
        gat = MultiHeadGAT(
            12,
            8,
            6,
            heads=3,
            dropout=0.2,
            leaky_relu_slope=0.01,
            softmax_axis=axis,
            self_loops=self_loops,
            implementation=implementation,
        ).eval()
        inputs = x.clone().requires_grad_()
        out = gat(inputs, edges, mask)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results[implementation] = (out, inputs.grad, [p.grad for p in gat.parameters()])
    (out, grad_x, grads), (dense_out, dense_grad_x, dense_grads) = results.values()
    torch.testing.assert_close(out, dense_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_x, dense_grad_x, rtol=1e-4, atol=1e-5)
    for grad, dense_grad in zip(grads, dense_grads, strict=True):
        torch.testing.assert_close(grad, dense_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_neighbour_lists_train_under_autocast(dtype):
    """The sparse products run in float32 inside autocast; gradients reach the input."""
    edges, mask = random_graphs(0)
    gat = MultiHeadGAT(
        12, 8, 6, heads=3, dropout=0.0, leaky_relu_slope=0.01, softmax_axis="neighbours", self_loops=True
    )
    x = torch.randn(2, mask.shape[1], 12, requires_grad=True)
    with torch.autocast("cpu", dtype=dtype):
        out = gat(x, edges, mask)
    out.float().sum().backward()
    assert out.dtype == dtype and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_edge_aggregation_gradients_match_finite_differences():
    edges, mask = random_graphs(1)
    receivers, neighbours = graph_edges(edges, mask, self_loops=True)
    generator = torch.Generator().manual_seed(0)
    alpha = torch.rand(2, receivers.numel(), dtype=torch.float64, generator=generator, requires_grad=True)
    values = torch.randn(mask.numel(), 2, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, v: _EdgeAggregation.apply(a, v, torch.stack([receivers, neighbours])), (alpha, values)
    )


class ShapeRecorder(TorchDispatchMode):
    """Records the number of elements of every tensor an operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if isinstance(tensor, torch.Tensor):  # a sparse tensor holds only its values
                self.sizes.append((str(func), tensor._values().numel() if tensor.is_sparse else tensor.numel()))
        return out


@pytest.mark.parametrize("axis", ["neighbours", "receivers"])
def test_neighbour_lists_form_no_spots_by_spots_tensor_forward_or_backward(axis):
    """Training over neighbour lists stays O(edges): nothing of S × S elements, S = spots, in either pass."""
    n = 600
    spots = torch.arange(n)
    edges = torch.stack([spots.repeat(4), torch.cat([(spots + k) % n for k in (1, 2, 3, 4)])])
    mask = torch.ones(1, n, dtype=torch.bool)
    gat = MultiHeadGAT(
        8,
        4,
        3,
        heads=2,
        dropout=0.2,
        leaky_relu_slope=0.01,
        softmax_axis=axis,
        self_loops=True,
        implementation="neighbour_list",
    ).train()
    x = torch.randn(1, n, 8, requires_grad=True)
    with ShapeRecorder() as recorder:
        gat(x, edges, mask).sum().backward()
    largest = max(recorder.sizes, key=lambda item: item[1])
    assert largest[1] < n * n / 10, largest
    assert x.grad is not None and x.grad.abs().sum() > 0


def dropout_layer(axis: str, implementation: str, heads: int = 2) -> GraphAttention:
    torch.manual_seed(0)
    options = {"dropout": 0.5, "leaky_relu_slope": 0.01, "softmax_axis": axis, "self_loops": False}
    return GraphAttention(6, 5, heads, implementation=implementation, **options).train()


@pytest.mark.parametrize("axis", ["neighbours", "receivers"])
def test_uniform_weights_of_spots_without_edges_are_dropped_out_as_in_the_dense_formulation(axis):
    """No edge at all: every weight is the dense softmax's uniform 1/n, in the dense layout's order,
    so one random stream draws the same attention-dropout mask for both implementations."""
    n, x = 9, torch.randn(1, 9, 6, generator=torch.Generator().manual_seed(3))
    no_edges, mask = torch.zeros(2, 0, dtype=torch.long), torch.ones(1, n, dtype=torch.bool)
    outputs = {}
    for implementation in IMPLEMENTATIONS:
        gat = dropout_layer(axis, implementation)
        torch.manual_seed(1)
        outputs[implementation] = gat(x, no_edges, mask)
    torch.testing.assert_close(outputs["neighbour_list"], outputs["dense"], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(outputs["dense"], gat.eval()(x, no_edges, mask))  # dropout acted


@pytest.mark.parametrize("axis", ["neighbours", "receivers"])
def test_with_attention_dropout_both_implementations_have_one_distribution(axis):
    """Spots without edges among spots with edges: per output, the mean and variance over 2,000
    dropout draws agree between the two implementations (the masks differ, their law does not)."""
    n = 8
    edges = torch.tensor([[0, 0, 1, 2, 2, 3], [1, 2, 2, 0, 3, 1]])  # 4..7 list nobody and are listed by nobody
    mask, x = torch.ones(1, n, dtype=torch.bool), torch.randn(1, n, 6, generator=torch.Generator().manual_seed(4))
    draws = {}
    for implementation in IMPLEMENTATIONS:
        gat = dropout_layer(axis, implementation, heads=1)
        torch.manual_seed(2)
        with torch.no_grad():
            draws[implementation] = torch.stack([gat(x, edges, mask) for _ in range(2000)])
    sparse, dense = draws["neighbour_list"], draws["dense"]
    standard_error = dense.std(0) / 2000**0.5
    assert ((sparse.mean(0) - dense.mean(0)).abs() <= 6 * standard_error + 1e-6).all()
    assert dense.var(0).min() > 0  # every output is random under dropout
    torch.testing.assert_close(sparse.var(0), dense.var(0), rtol=0.2, atol=1e-6)
