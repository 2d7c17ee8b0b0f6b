"""imse_study.nets: one home for the networks, the old import paths, every shipped checkpoint, one padding."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imse_study import nets
from imse_study.nets import pad_to_multiple, padded_shape


def test_old_import_paths_give_the_same_classes():
    from imse_study.baselines import translator
    from imse_study.evaluator import model
    from imse_study.registration import network

    assert model.Evaluator is nets.Evaluator and model.UNetEvaluator is nets.UNetEvaluator
    assert model.OUTPUT_SCALE == nets.OUTPUT_SCALE == 2.0
    assert translator.Translator is nets.Translator and translator.Discriminator is nets.Discriminator
    assert translator.registration_net is nets.registration_net
    assert network.RegistrationNet is nets.RegistrationNet
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        nets.Nope  # noqa: B018


def test_evaluator_and_translator_share_the_generator():
    evaluator = nets.Evaluator(2, width=4, n_blocks=1).eval()
    translator = nets.Translator(2, width=4, n_blocks=1).eval()
    assert isinstance(evaluator, nets.ResnetGenerator) and isinstance(translator, nets.ResnetGenerator)
    assert evaluator.state_dict().keys() == translator.state_dict().keys()
    # the same weights, the first convolution cut to the first input channel: E(x, 0) = 2 G(x)
    state = dict(evaluator.state_dict())
    state["net.1.weight"] = state["net.1.weight"][:, :1]
    translator.load_state_dict(state)
    x = torch.rand(2, 1, 16, 12) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(evaluator(x, torch.zeros_like(x)), 2.0 * translator(x))


def _shipped():
    from imse_study.evaluator.pretrained import PRETRAINED_DIR
    from imse_study.study.zoo import ZOO_DIR

    return sorted(PRETRAINED_DIR.glob("*.pt")) + sorted(ZOO_DIR.glob("*.pt"))


def test_every_shipped_checkpoint_loads_into_its_network():
    from imse_study.baselines.translator import load_translator
    from imse_study.evaluator.pretrained import load_any
    from imse_study.registration import load_network

    paths = _shipped()
    assert len(paths) > 20
    for path in paths:
        if path.name.startswith("vm-"):
            model, _ = load_network(path)
            assert isinstance(model, nets.RegistrationNet)
        elif path.name.startswith(("cyclegan-", "reggan-")):
            model = load_translator(path)
            assert isinstance(model, nets.Translator)
        else:
            model, _ = load_any(str(path))
            assert isinstance(model, (nets.Evaluator, nets.UNetEvaluator))
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        assert list(state) == list(model.state_dict())


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 13), min_size=2, max_size=3), multiple=st.sampled_from([4, 8]))
def test_padding_reaches_the_multiple_and_crops_back(shape, multiple):
    x = torch.from_numpy(np.random.default_rng(sum(shape)).standard_normal((2, 1, *shape)))
    padded, crop = pad_to_multiple(x, multiple)
    assert tuple(padded.shape[2:]) == padded_shape(shape, multiple)
    assert all(s % multiple == 0 and s - n < multiple for s, n in zip(padded.shape[2:], shape))
    torch.testing.assert_close(padded[(slice(None), slice(None), *crop)], x)
    for axis, c in enumerate(crop):  # symmetric: the odd voxel goes after
        before, after = c.start, padded.shape[2 + axis] - c.stop
        assert after - before in (0, 1)


def test_unpadded_input_is_returned_as_is():
    x = torch.zeros(1, 1, 8, 12)
    padded, crop = pad_to_multiple(x)
    assert padded is x and crop == (slice(0, 8), slice(0, 12))


def test_translate_with_pads_like_the_evaluator():
    from imse_study.baselines.translator import translate_with

    torch.manual_seed(0)
    model = nets.Translator(2, width=4, n_blocks=1).eval()
    image = torch.rand(1, 1, 18, 21) * 2 - 1
    padded, crop = pad_to_multiple(image)
    with torch.no_grad():
        expected = model(padded)[(slice(None), slice(None), *crop)]
    torch.testing.assert_close(translate_with(model, image), expected)
