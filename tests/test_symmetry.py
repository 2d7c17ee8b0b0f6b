"""Test-time mirror averaging of an evaluator (imse_study.evaluator.symmetry)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imse_study.evaluator.symmetry import FlipAveraged, flip_groups
from imse_study.losses.similarity import similarity


class Skewed(torch.nn.Module):
    """A small random network with a built-in direction: not mirror-equivariant."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        conv = torch.nn.Conv2d if dim == 2 else torch.nn.Conv3d
        self.net = conv(2, 1, 3, padding=1)
        self.dim = dim

    def forward(self, reference, other):
        return self.net(torch.cat([reference, other], 1))


def test_flip_groups_list_the_mirrors():
    assert flip_groups(2, "none") == [()]
    assert flip_groups(2, "point") == [(), (2, 3)]
    assert sorted(flip_groups(3, "axes")) == sorted([(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)])
    with pytest.raises(ValueError, match="flips must be one of"):
        flip_groups(2, "diagonal")


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), dim=st.sampled_from([2, 3]))
def test_averaging_makes_the_evaluator_exactly_mirror_equivariant(seed, dim):
    plain = Skewed(dim, seed)
    g = torch.Generator().manual_seed(seed)
    shape = (1, 1) + (8,) * dim
    r, o = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    axes = tuple(range(2, 2 + dim))
    for flips, mirrors in (("point", [axes]), ("axes", [(a,) for a in axes] + [axes])):
        averaged = FlipAveraged(plain, flips)
        for m in mirrors:
            torch.testing.assert_close(averaged(torch.flip(r, m), torch.flip(o, m)), torch.flip(averaged(r, o), m))
    mirrored = plain(torch.flip(r, axes), torch.flip(o, axes))
    assert not torch.allclose(mirrored, torch.flip(plain(r, o), axes))  # the plain network is not


def test_the_imse_similarity_takes_flips_and_checks_them():
    plain = Skewed(2, 0)
    loss = similarity("imse", evaluator=plain, evaluator_modality="t1", moving_modality="t2", target_modality="t1",
                      flips="point")
    x = torch.rand(1, 1, 8, 8) * 2 - 1
    expected = FlipAveraged(plain, "point")(x, x.flip(2)).abs().mean()
    torch.testing.assert_close(loss(x.flip(2), x), expected)
    assert "flips=point" in repr(loss)
    with pytest.raises(ValueError, match="flips must be one of"):
        similarity("imse", evaluator=plain, evaluator_modality="t1", moving_modality="t2", target_modality="t1",
                   flips="all")
