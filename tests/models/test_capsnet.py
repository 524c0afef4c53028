"""Efficient-CapsNet: squash, self-attention routing, the encoder's shapes and size."""

from __future__ import annotations

import copy
import math

import torch

from thitogene_kedro.models.capsnet import CapsuleEncoder, SelfAttentionRouting, squash

SMALL = {
    "stem_channels": [8, 8, 16, 16],
    "stem_kernels": [5, 3, 3, 3],
    "stem_strides": [1, 1, 1, 2],
    "primary_capsules": 4,
    "primary_dim": 4,
    "capsules": 5,
    "capsule_dim": 8,
}


def test_squash_follows_the_efficient_capsnet_formula():
    s = torch.randn(7, 5, 8) * 3
    u = squash(s)
    norm = s.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(u, (1 - torch.exp(-norm)) * s / norm, rtol=1e-5, atol=1e-6)
    assert (u.norm(dim=-1) < 1).all()
    assert torch.equal(squash(torch.zeros(2, 3)), torch.zeros(2, 3))  # ε keeps 0 finite


def test_routing_matches_an_explicit_loop():
    torch.manual_seed(0)
    routing = SelfAttentionRouting(n_in=4, d_in=3, n_out=5, d_out=6)
    with torch.no_grad():
        routing.b.normal_()
    u = torch.randn(2, 4, 3)
    out = routing(u)
    for m in range(2):
        predictions = torch.stack([torch.stack([u[m, i] @ routing.W[n, i] for i in range(4)]) for n in range(5)])
        agreement = torch.stack(
            [
                torch.stack([sum(predictions[n, i] @ predictions[n, k] for k in range(4)) for i in range(4)])
                for n in range(5)
            ]
        ) / math.sqrt(6)
        coupling = torch.softmax(agreement, dim=0) + routing.b[..., 0]  # softmax over output capsules
        s = (coupling[..., None] * predictions).sum(dim=1)
        torch.testing.assert_close(out[m], squash(s), rtol=1e-4, atol=1e-5)


def test_paper_capsule_encoder_shapes_and_count():
    encoder = CapsuleEncoder(
        16,
        28,
        stem_channels=[32, 64, 64, 128],
        stem_kernels=[5, 3, 3, 3],
        stem_strides=[1, 1, 1, 2],
        primary_capsules=16,
        primary_dim=8,
        capsules=20,
        capsule_dim=64,
    ).eval()
    assert encoder.map_size == 9
    assert sum(p.numel() for p in encoder.parameters()) == 317_344
    assert encoder(torch.rand(3, 16, 28, 28)).shape == (3, 20, 64)


def test_routing_scale_is_not_a_tensor():
    """The reference divides by a CPU tensor (fails on CUDA); here it is a plain float."""
    assert isinstance(SelfAttentionRouting(16, 8, 20, 64).scale, float)


def test_the_stem_computes_a_channels_last_input_as_a_channels_first_one():
    """Bit-identical outputs and gradients in train mode: the stem's batch norms never take the
    channels-last CPU kernel, whose float32 batch statistics carry ~300x the rounding error."""
    torch.manual_seed(0)
    encoder = CapsuleEncoder(16, 28, **SMALL).train()
    x = torch.relu(torch.randn(40, 16, 28, 28)) * 3 + 1
    results = []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        stem = copy.deepcopy(encoder.stem)
        inputs = x.clone().contiguous(memory_format=memory_format).requires_grad_()
        out = stem(inputs)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out, inputs.grad, *(p.grad for p in stem.parameters())])
    for first, last in zip(*results, strict=True):
        assert torch.equal(first, last)
