"""The napari plugin ``imse-study`` headless (pytest-xvfb): reader/writer, sample data, the three widgets.

Every widget result is checked numerically against the package function it wraps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

napari = pytest.importorskip("napari")
npe2 = pytest.importorskip("npe2")

from imse_study.data.io import load_labels, load_nifti, save_nifti  # noqa: E402  (after the importorskip of napari)
from imse_study.evaluator.apply import error_map_array, translate_array  # noqa: E402  (after the importorskip of napari)
from imse_study.evaluator.floor import foreground_score  # noqa: E402  (after the importorskip of napari)
from imse_study.evaluator.pretrained import available_pretrained, load_any  # noqa: E402  (after the importorskip of napari)
from imse_study.napari._common import default_affine  # noqa: E402  (after the importorskip of napari)

pytestmark = pytest.mark.integration
PLUGIN = "imse-study"


@pytest.fixture(scope="module", autouse=True)
def _discover():
    torch.set_num_threads(1)
    npe2.PluginManager.instance().discover()


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _sample(viewer, key):
    return viewer.open_sample(PLUGIN, key)


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def _needs_evaluator(name):
    if name not in available_pretrained():
        pytest.skip(f"shipped evaluator {name} not installed")


# ------------------------------------------------------------------------------------------------
# Reader and writer
# ------------------------------------------------------------------------------------------------


def test_writer_reader_round_trip(viewer, tmp_path):
    _sample(viewer, "phantom-3d")
    image, labels = viewer.layers["phantom t1"], viewer.layers["phantom labels"]
    img_path, lab_path = tmp_path / "t1.nii.gz", tmp_path / "head.nii.gz"
    assert image.save(str(img_path), plugin=PLUGIN) == [str(img_path)]
    assert labels.save(str(lab_path), plugin=PLUGIN) == [str(lab_path)]
    # the files are plain NIfTI with the phantom's geometry
    _, affine, spacing = load_nifti(img_path)
    np.testing.assert_allclose(affine, image.metadata["affine"])
    assert spacing == pytest.approx(tuple(image.scale))
    assert load_labels(lab_path)[0].dtype == np.int32
    viewer.layers.clear()
    (img,) = viewer.open(str(img_path), plugin=PLUGIN)
    (lab,) = viewer.open(str(lab_path), plugin=PLUGIN)  # integer with few values -> Labels
    assert isinstance(img, napari.layers.Image) and isinstance(lab, napari.layers.Labels)
    np.testing.assert_allclose(img.data, image.data, atol=1e-6)
    np.testing.assert_array_equal(lab.data, labels.data)
    np.testing.assert_allclose(img.scale, image.scale)
    np.testing.assert_allclose(lab.scale, labels.scale)


def test_reader_labels_by_name_and_reorients(viewer, tmp_path):
    # a float file named *seg* opens as labels; a 3D RAS-ordered file is shown as (z, y, x)
    seg = np.zeros((6, 5, 4), np.float32)
    seg[1:3, 2:4, 1] = 2
    ras = np.diag([1.0, 2.0, 3.0, 1.0])
    save_nifti(tmp_path / "brain_seg.nii.gz", seg, ras)
    (layer,) = viewer.open(str(tmp_path / "brain_seg.nii.gz"), plugin=PLUGIN)
    assert isinstance(layer, napari.layers.Labels)
    assert layer.data.shape == (4, 5, 6)  # (S, P, R)
    np.testing.assert_allclose(layer.scale, (3.0, 2.0, 1.0))
    np.testing.assert_array_equal(layer.data, np.flip(seg.transpose(2, 1, 0), axis=1))
    # many float values -> Image; 2D kept as it is; written without metadata and read back
    img = np.random.default_rng(0).normal(size=(7, 9)).astype(np.float32)
    layer = viewer.add_image(img, scale=(2.0, 0.5), name="plain")
    layer.save(str(tmp_path / "plain.nii"), plugin=PLUGIN)
    (back,) = viewer.open(str(tmp_path / "plain.nii"), plugin=PLUGIN)
    assert isinstance(back, napari.layers.Image)
    np.testing.assert_allclose(back.data, img)
    np.testing.assert_allclose(back.scale, (2.0, 0.5))


# ------------------------------------------------------------------------------------------------
# Sample data
# ------------------------------------------------------------------------------------------------


def test_sample_data(viewer):
    from imse_study.data.phantom import load_phantom

    layers = _sample(viewer, "phantom-2d")
    assert [layer.name for layer in layers] == ["phantom t1", "phantom t2", "phantom pd", "phantom ct", "phantom labels"]
    ph = load_phantom("test", 2, "quick")
    np.testing.assert_array_equal(viewer.layers["phantom ct"].data, ph.images["ct"][4])
    np.testing.assert_array_equal(viewer.layers["phantom labels"].data, ph.labels[4])
    assert tuple(viewer.layers["phantom t1"].scale) == ph.spacing
    layers3 = _sample(viewer, "phantom-3d")
    assert len(layers3) == 5 and all(layer.ndim == 3 for layer in layers3)
    assert isinstance(layers3[-1], napari.layers.Labels)
    pair = _sample(viewer, "phantom-pair-2d")
    assert [type(layer).__name__ for layer in pair] == ["Image", "Labels", "Image", "Labels"]


# ------------------------------------------------------------------------------------------------
# Widgets
# ------------------------------------------------------------------------------------------------


def test_error_map_widget_2d_and_3d(viewer):
    _needs_evaluator("phantom-ct-2d")
    _sample(viewer, "phantom-2d")
    widget = _dock(viewer, "Error map")
    assert widget.reference.value == "phantom ct" and widget.other.value == "phantom t1"
    widget.run()
    layer = viewer.layers["IMSE error"]
    model, _ = load_any("phantom-ct-2d")
    expected = error_map_array(model, viewer.layers["phantom ct"].data, viewer.layers["phantom t1"].data, 2)
    np.testing.assert_allclose(layer.data, expected, atol=1e-5)
    lo, hi = layer.contrast_limits
    assert lo == pytest.approx(-hi) and hi > 0  # centred at zero
    assert layer.blending == "translucent"
    assert widget.result["mean_abs_error"] == pytest.approx(np.abs(expected).mean(), abs=1e-4)
    ct, t1 = (viewer.layers[n].data for n in ("phantom ct", "phantom t1"))  # in [-1, 1] already
    assert float(widget.mean_error.value) == pytest.approx(foreground_score(ct, t1, expected), abs=1e-4)
    assert widget.reading.value.startswith("like aligned") and "95 % below" in widget.reading.value
    # the legend: the layer's colour bar and a text overlay with units, signs and the reading
    text = viewer.canvas.overlays["text"]
    assert layer.colorbar.visible and text.visible
    assert "image units" in text.text and "red, E > 0" in text.text and "like aligned" in text.text
    # aligned pair: much smaller error than the same pair misaligned by a shift
    viewer.add_image(np.roll(viewer.layers["phantom t1"].data, 6, axis=1), name="shifted t1",
                     scale=viewer.layers["phantom t1"].scale)
    widget.reset_choices()
    widget.other.value = "shifted t1"
    widget.run()
    assert widget.result["mean_abs_error"] > 1.2 * np.abs(expected).mean()
    # 3D layers with a 2D evaluator: slice by slice along the axial (first) axis, each slice resampled
    # in-plane from the volume's 3.75 mm to the evaluator's 2 mm and back
    viewer.layers.clear()
    _sample(viewer, "phantom-3d")
    widget.reset_choices()
    widget.reference.value, widget.other.value = "phantom ct", "phantom t1"
    widget.run()
    error = viewer.layers["IMSE error"].data
    ct, t1 = viewer.layers["phantom ct"].data, viewer.layers["phantom t1"].data
    assert error.shape == ct.shape
    in_plane = default_affine(viewer.layers["phantom ct"].scale[1:], 2)
    for k in (0, 15):
        expected_k = error_map_array(model, ct[k], t1[k], 2, affine=in_plane, evaluator_spacing=(2.0, 2.0))
        np.testing.assert_allclose(error[k], expected_k, atol=1e-5)


def test_error_map_widget_picks_two_inputs_after_layers_load_and_never_its_outputs(viewer):
    _needs_evaluator("phantom-ct-2d")
    widget = _dock(viewer, "Error map")  # opened on an empty viewer, as a user may
    _sample(viewer, "phantom-2d")
    assert widget.reference.value == "phantom ct" and widget.other.value == "phantom t1"
    widget.run()
    _dock(viewer, "Translate").run()
    outputs = {"IMSE error", *(n.name for n in viewer.layers if "translated" in n.name)}
    assert len(outputs) == 2
    choices = set(widget.reference.choices) | set(widget.other.choices)
    assert not choices & outputs and "phantom t2" in choices
    viewer.layers.remove("phantom t1")  # the other input goes: a different layer takes its place
    assert widget.other.value in choices - {"phantom t1"} and widget.reference.value != widget.other.value


def test_qa_widget(viewer):
    _needs_evaluator("phantom-t1-2d")
    from imse_study.napari._common import layer_affine
    from imse_study.qa import assess_arrays
    from imse_study.qa.assess import evaluator_calibration

    _sample(viewer, "phantom-2d")
    t1 = viewer.layers["phantom t1"]
    viewer.add_image(np.roll(viewer.layers["phantom t2"].data, 5, axis=1), name="shifted t2", scale=t1.scale)
    widget = _dock(viewer, "QA")
    assert widget.target.value == "phantom t1"
    widget.moved.value = "shifted t2"
    widget.run()
    model, meta = load_any("phantom-t1-2d")
    calibration, _ = evaluator_calibration("phantom-t1-2d")
    expected = assess_arrays(model, meta, viewer.layers["shifted t2"].data, t1.data, layer_affine(t1),
                             calibration=calibration)
    assert widget.result.score == pytest.approx(expected.score, abs=1e-6)
    assert float(widget.score.value) == pytest.approx(expected.score, abs=1e-4)
    regions = viewer.layers["QA regions"]
    assert isinstance(regions, napari.layers.Labels) and regions.data.max() == len(expected.regions) > 0
    np.testing.assert_allclose(viewer.layers["QA error"].data, expected.error_map, atol=1e-5)
    if calibration is not None:
        assert widget.estimate.value.endswith("]") and "mm" in widget.estimate.value
        assert widget.result.misalignment_mm == expected.misalignment_mm
    else:
        assert widget.estimate.value == "not calibrated" and "qa-calibrate" in widget.last_message


def test_translate_widget(viewer):
    _needs_evaluator("phantom-t1-2d")
    _sample(viewer, "phantom-2d")
    widget = _dock(viewer, "Translate")
    widget.reference.value, widget.source.value = "phantom t1", "phantom ct"
    widget.evaluator.value = "phantom-t1-2d"
    widget.run()
    layer = viewer.layers["phantom ct translated to t1"]
    model, _ = load_any("phantom-t1-2d")
    expected = translate_array(model, viewer.layers["phantom t1"].data, viewer.layers["phantom ct"].data, 2)
    np.testing.assert_allclose(layer.data, expected, atol=1e-5)


@pytest.fixture
def registration_modules():
    try:
        from imse_study.registration.optimise import optimise_field  # noqa: F401
        from imse_study.losses.similarity import similarity  # noqa: F401
    except ImportError as err:  # pragma: no cover - the registration package is required
        pytest.skip(f"imse_study.registration is not importable yet: {err}")


def _wait(qtbot, widget, timeout=30_000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


@pytest.mark.parametrize("sim", ["mi", "imse"])
def test_register_widget(viewer, qtbot, registration_modules, sim):
    from imse_study.metrics import dice
    from imse_study.registration.optimise import optimise_field
    from imse_study.losses.similarity import similarity
    from imse_study.warp import warp

    if sim == "imse":
        _needs_evaluator("phantom-ct-2d")
    _sample(viewer, "phantom-pair-2d")
    widget = _dock(viewer, "Register")
    assert widget.moving.value.startswith("moving t1") and widget.target.value.startswith("target ct")
    assert widget.moving_labels.value.startswith("moving labels")
    widget.similarity.value = sim
    widget.iterations.value = 12
    widget.run()
    _wait(qtbot, widget)
    res = widget.result
    assert "displacement" in res, widget.last_message
    mov, tgt = viewer.layers[widget.moving.value].data, viewer.layers[widget.target.value].data
    m, t = torch.from_numpy(mov)[None, None], torch.from_numpy(tgt)[None, None]
    loss = similarity("mi") if sim == "mi" else similarity(
        "imse", evaluator="phantom-ct-2d", moving_modality="t1", target_modality="ct")
    expected = optimise_field(m, t, loss, iterations=12)[0].numpy()
    np.testing.assert_allclose(res["displacement"], expected, atol=1e-4)
    warped = viewer.layers[f"{widget.moving.value} registered"].data
    np.testing.assert_allclose(warped, warp(m, torch.from_numpy(expected)[None])[0, 0].numpy(), atol=1e-4)
    assert isinstance(viewer.layers[f"{widget.moving.value} deformation"], napari.layers.Shapes)
    lab = viewer.layers[f"{widget.moving_labels.value} warped"]
    assert isinstance(lab, napari.layers.Labels)
    target_labels = viewer.layers[widget.target_labels.value].data
    assert res["dice_after"] == pytest.approx(dice(lab.data, target_labels)["mean"])
    assert "Dice" in widget.last_message and widget.progress.value == 12


def test_register_cancel_and_vectors(viewer, qtbot, registration_modules):
    _sample(viewer, "phantom-pair-2d")
    widget = _dock(viewer, "Register")
    widget.similarity.value = "mi"
    widget.iterations.value = 5000
    n_layers = len(viewer.layers)
    widget.run()
    assert widget.running and widget.cancel_button.enabled
    qtbot.waitUntil(lambda: widget.progress.value >= 2, timeout=20_000)
    widget.cancel()
    _wait(qtbot, widget)
    assert widget.result == {"cancelled": True}
    assert "cancelled" in widget.last_message
    assert len(viewer.layers) == n_layers and widget.run_button.enabled
    # the deformation as vectors
    widget.iterations.value = 8
    widget.deformation.value = "vectors"
    widget.run()
    _wait(qtbot, widget)
    vectors = viewer.layers[f"{widget.moving.value} deformation"]
    assert isinstance(vectors, napari.layers.Vectors)
    d = widget.result["displacement"]
    pos = vectors.data[:, 0].astype(int)
    np.testing.assert_allclose(vectors.data[:, 1], d[:, pos[:, 0], pos[:, 1]].T, atol=1e-5)


def test_register_widget_runs_a_stack_slice_by_slice(viewer, qtbot, registration_modules):
    """The command line's rule: a stack of 2 axial slices is registered in 2D, never through-plane."""
    from imse_study.data.phantom import load_phantom

    ph = load_phantom("test", 2, "quick", ("t1", "ct"))
    scale = (5.0, *ph.spacing)  # 2 axial slices 5 mm apart
    viewer.add_image(ph.images["t1"][3:5], name="moving t1", scale=scale)
    viewer.add_image(ph.images["ct"][11:13], name="target ct", scale=scale)
    widget = _dock(viewer, "Register")
    widget.moving.value, widget.target.value = "moving t1", "target ct"
    widget.similarity.value = "mi"
    widget.iterations.value = 4
    widget.run()
    _wait(qtbot, widget)
    d = widget.result["displacement"]
    assert d.shape == (3, 2, 120, 120) and np.all(d[0] == 0) and np.abs(d[1:]).max() > 0
    assert widget.progress.value == 8 and "slice by slice" in widget.last_message


# ------------------------------------------------------------------------------------------------
# Bad input: messages, not tracebacks
# ------------------------------------------------------------------------------------------------


def test_bad_inputs_give_messages(viewer, qtbot, monkeypatch):
    _sample(viewer, "phantom-2d")
    widget = _dock(viewer, "Error map")
    # RGB
    viewer.add_image(np.zeros((120, 120, 3), np.uint8), rgb=True, name="photo")
    widget.reset_choices()
    widget.reference.value, widget.other.value = "phantom ct", "photo"
    widget.run()
    assert "RGB" in widget.last_message and "IMSE error" not in viewer.layers
    # 2D vs 3D
    viewer.add_image(np.zeros((4, 120, 120), np.float32), name="volume")
    widget.reset_choices()
    widget.other.value = "volume"
    widget.run()
    assert "2D" in widget.last_message and "3D" in widget.last_message
    # no evaluator: an empty checkpoint choice, and an installation that ships none
    widget.other.value = "phantom t1"
    widget.evaluator.value = "checkpoint file..."
    widget.run()
    assert widget.last_message.startswith("no evaluator")
    import imse_study.napari._widgets as w

    monkeypatch.setattr(w, "available_pretrained", list)
    widget.evaluator.value = "auto"
    widget.run()
    assert widget.last_message.startswith("no evaluator") and "IMSE error" not in viewer.layers
    monkeypatch.undo()
    # a layer of another shape is resampled onto the reference, with a notice
    _needs_evaluator("phantom-ct-2d")
    t1 = viewer.layers["phantom t1"]
    viewer.add_image(t1.data[::2, ::2].copy(), scale=tuple(2 * s for s in t1.scale), name="small t1")
    widget.reset_choices()
    widget.other.value = "small t1"
    widget.run()
    assert viewer.layers["IMSE error"].data.shape == (120, 120)
    assert "mean |E|" in widget.last_message
    # Register: IMSE with 3D layers and a 2D evaluator is refused with a message
    viewer.layers.clear()
    _sample(viewer, "phantom-3d")
    reg = _dock(viewer, "Register")
    reg.moving.value, reg.target.value = "phantom t1", "phantom ct"
    reg.similarity.value = "imse"
    reg.run()
    assert not reg.running and "2D" in reg.last_message and "3D" in reg.last_message


# ------------------------------------------------------------------------------------------------
# What the user sees
# ------------------------------------------------------------------------------------------------


def test_screenshot_not_blank(make_napari_viewer):
    _needs_evaluator("phantom-ct-2d")
    viewer = make_napari_viewer(show=True)
    _sample(viewer, "phantom-2d")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Error map")
    widget.run()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[-1] == 4
    rgb = shot[..., :3].astype(float)
    assert rgb.std() > 10 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50
    assert (rgb[..., 0] > rgb[..., 2] + 60).any() or (rgb[..., 2] > rgb[..., 0] + 60).any()  # the coloured map
