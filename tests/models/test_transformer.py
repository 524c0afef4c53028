"""The spot transformer: fused attention equals the written-out formula; padding is masked."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from thitogene_kedro.models.transformer import SpotTransformer


def explicit_block_attention(attention, x):
    b, n, _ = x.shape
    q, k, v = attention.to_qkv(x).view(b, n, 3, attention.heads, attention.head_dim).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / attention.head_dim**0.5, dim=-1)
    return attention.to_out((weights @ v).transpose(1, 2).reshape(b, n, -1))


def test_paper_block_size_and_fused_attention_matches_the_formula():
    torch.manual_seed(0)
    vit = SpotTransformer(1408, depth=1, heads=16, head_dim=64, mlp_dim=2048, dropout=0.2, embedding_dropout=0.2).eval()
    assert sum(p.numel() for p in vit.parameters()) == 11_544_832
    x = torch.randn(1, 9, 1408)
    attention = vit.layers[0][0]
    expected = explicit_block_attention(attention.fn, attention.norm(x))
    torch.testing.assert_close(attention(x), expected, rtol=1e-4, atol=1e-5)


def test_padded_keys_do_not_change_real_tokens():
    torch.manual_seed(0)
    vit = SpotTransformer(32, depth=2, heads=4, head_dim=8, mlp_dim=64, dropout=0.0, embedding_dropout=0.0).eval()
    x = torch.randn(1, 6, 32)
    padded = torch.cat([x, torch.randn(1, 3, 32) * 100], dim=1)
    mask = torch.tensor([[True] * 6 + [False] * 3])
    torch.testing.assert_close(vit(padded, mask)[:, :6], vit(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(vit(padded)[:, :6], vit(x), atol=1e-3)  # unmasked padding would leak


# the tiled kernel PyTorch has for float32 on each device (CUDA's flash kernel needs 16-bit inputs)
MEMORY_EFFICIENT = {"cpu": [SDPBackend.FLASH_ATTENTION], "cuda": [SDPBackend.EFFICIENT_ATTENTION]}


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))],
)
@pytest.mark.parametrize("padded", [False, True])
def test_memory_efficient_attention_equals_the_plain_one(device, padded):
    """The tiled kernels (no N×N matrix) give the math kernel's output and gradients, masks included."""
    torch.manual_seed(0)
    vit = (
        SpotTransformer(64, depth=2, heads=4, head_dim=16, mlp_dim=128, dropout=0.0, embedding_dropout=0.0)
        .to(device)
        .eval()
    )
    x = torch.randn(2, 700, 64, device=device)
    mask = torch.ones(2, 700, dtype=torch.bool, device=device)
    if padded:
        mask[1, 450:] = False
    key_mask = mask if padded else None

    def run(backends):
        inputs = x.clone().requires_grad_()
        with sdpa_kernel(backends):
            out = vit(inputs, key_mask)
        (out * mask[..., None]).square().sum().backward()
        return out * mask[..., None], inputs.grad

    plain = run([SDPBackend.MATH])
    for backend in MEMORY_EFFICIENT[device]:
        out, grad = run([backend])
        torch.testing.assert_close(out, plain[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(grad, plain[1], rtol=1e-3, atol=1e-3)
