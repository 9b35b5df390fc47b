import torch

from lira.arca import AnchorAdaptors, SharedAdaptor


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_shared_adaptor_shapes_and_hidden_default():
    a = SharedAdaptor(12, 8)
    assert a.hidden == 12
    assert a(torch.randn(3, 4, 12)).shape == (3, 4, 8)
    assert a(torch.randn(5, 12)).shape == (5, 8)


def test_shared_is_one_set_of_weights_for_both_paths():
    torch.manual_seed(0)
    ad = AnchorAdaptors(16, 16, 8, shared=True)
    assert _n_params(ad) == _n_params(SharedAdaptor(16, 8))
    x = torch.randn(2, 3, 16)
    # same input through either path gives the same output: literally the same network
    torch.testing.assert_close(ad.lr(x), ad.en(x))
    # and gradients from both paths land in the same tensors
    e_lr, e_en = ad(x, torch.randn(2, 3, 16))
    e_lr.sum().backward()
    g_lr = {n: p.grad.clone() for n, p in ad.named_parameters()}
    ad.zero_grad()
    e_en.sum().backward()
    assert all(p.grad is not None and g_lr[n] is not None for n, p in ad.named_parameters())


def test_shared_with_different_widths_projects_then_shares():
    ad = AnchorAdaptors(10, 6, 4, shared=True)
    e_lr, e_en = ad(torch.randn(2, 3, 10), torch.randn(2, 3, 6))
    assert e_lr.shape == e_en.shape == (2, 3, 4)
    shared = {id(p) for p in ad.adaptor.parameters()}
    # only the narrower path gets a projection; the MLP is one module
    assert isinstance(ad.proj_lr, torch.nn.Identity)
    assert isinstance(ad.proj_en, torch.nn.Linear)
    assert _n_params(ad) == _n_params(ad.adaptor) + 6 * 10 + 10
    assert len(shared) == len(list(ad.adaptor.parameters()))


def test_separate_is_two_adaptors():
    torch.manual_seed(0)
    ad = AnchorAdaptors(16, 16, 8, shared=False)
    assert _n_params(ad) == 2 * _n_params(SharedAdaptor(16, 8))
    x = torch.randn(2, 16)
    assert not torch.allclose(ad.lr(x), ad.en(x))
    # a gradient from the LRL path leaves the English adaptor untouched
    ad.lr(x).sum().backward()
    assert all(p.grad is None for p in ad.adaptor_en.parameters())
