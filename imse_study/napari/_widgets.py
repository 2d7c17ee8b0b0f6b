"""The plugin's dock widgets (magicgui containers): "Error map", "Translate", "Register" and "QA".

Every check a user can fail (an RGB layer, a 2D layer against a 3D one, no evaluator, a modality
the evaluator was not trained on, layers on different grids) ends in a message in the widget's
status line and a napari notification, never a traceback. Layers of different shapes are
resampled onto the reference (or target) layer's grid through their world coordinates (scale and
translate), with a notice.

Geometry: a layer's affine is the reader's (``metadata["affine"]``) or follows from its scale in the
package's (z, y, x) layout (``_common.layer_affine``). The widgets hand it to the package's helpers,
so they follow the same rules as the command line (:mod:`imse_study.data.geometry`): a 2D evaluator
runs on a stack's slices or a volume's axial slices, evaluators work at their training spacing, and
"Register" decides 2D (slice by slice) or 3D by one rule for every similarity ("dimension": auto).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Labels
from napari.utils.colormaps import Colormap
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal
from scipy import ndimage as ndi

from imse_study.data.geometry import registration_plan
from imse_study.data.phantom import MODALITIES
from imse_study.modalities import EVALUATOR_PREFERENCE
from imse_study.evaluator.apply import error_map_array, to_unit_range, translate_array
from imse_study.evaluator.checkpoint import evaluator_spacing
from imse_study.evaluator.floor import foreground_score, load_floor, reading, verdict
from imse_study.evaluator.pretrained import available_pretrained, load_any
from imse_study.napari._common import infer_modality, layer_affine

AUTO = "auto"
CHECKPOINT = "checkpoint file..."
NONE = "(none)"
SIMILARITIES = ("imse", "imse_robust", "mi", "ncc", "mind")
MIN_ITERATIONS = 4  # optimise_field's multires mode needs a step per stage (affine + 3 levels)
ERROR_LAYER = "IMSE error"
OUTPUT_KEY = "imse_study_output"  # in the metadata of the layers the widgets make: never offered as inputs
QA_ERROR_LAYER = "QA error"
QA_REGIONS_LAYER = "QA regions"
# Blue (negative) -> transparent (zero) -> red (positive): centred at zero by symmetric contrast
# limits, and blended over the reference (translucent blending shows it where the error is small).
# Opacity grows with |E|, the hue stays pure, so the reference shows through untinted near zero.
ERROR_COLORMAP = Colormap(
    colors=[[0.10, 0.35, 1.0, 1.0], [0.10, 0.35, 1.0, 0.0], [1.0, 0.15, 0.10, 0.0], [1.0, 0.15, 0.10, 1.0]],
    controls=[0.0, 0.5, 0.5, 1.0], name="imse_diverging", display_name="IMSE diverging",
)

_MODELS: dict[str, tuple] = {}
_MODEL_KEYS: dict[str, str] = {}  # the label a widget shows -> the evaluator's name or file (its floor)


class InputError(ValueError):
    """A problem with what the user chose: shown as a message, not raised to napari."""


# ---------------------------------------------------------------------------------------------
# Layers and arrays
# ---------------------------------------------------------------------------------------------


def _layer(viewer, name: str | None, kind=Image, what: str = "layer"):
    if not name or name == NONE:
        raise InputError(f"choose a {what}")
    try:
        layer = viewer.layers[name]
    except KeyError:
        raise InputError(f"the {what} {name!r} is no longer in the viewer") from None
    if not isinstance(layer, kind):
        raise InputError(f"{name!r} is not an {kind.__name__} layer")
    if isinstance(layer, Image) and layer.rgb:
        raise InputError(f"{name!r} is an RGB image; IMSE works on single-channel (grey) images. "
                         "Convert it to one channel first")
    if layer.ndim not in (2, 3):
        raise InputError(f"{name!r} has {layer.ndim} dimensions; only 2D and 3D layers are supported")
    return layer


def _same_dim(*layers) -> None:
    dims = {layer.ndim for layer in layers}
    if len(dims) > 1:
        desc = ", ".join(f"{layer.name!r} is {layer.ndim}D" for layer in layers)
        raise InputError(f"the layers must all be 2D or all be 3D: {desc}")


def on_grid(layer, reference, order: int = 1) -> np.ndarray:
    """``layer``'s data on ``reference``'s voxel grid (through scale and translate).

    The data itself when the shapes, scales and translations agree; otherwise a resampling
    (linear, or nearest for ``order=0``) with a notice; an InputError when the two do not overlap.
    """
    data = np.asarray(layer.data)
    s_ref, t_ref = np.asarray(reference.scale, float), np.asarray(reference.translate, float)
    s, t = np.asarray(layer.scale, float), np.asarray(layer.translate, float)
    if data.shape == tuple(reference.data.shape) and np.allclose(s, s_ref) and np.allclose(t, t_ref):
        return data
    shape = reference.data.shape
    lo = (t - t_ref) / s_ref
    hi = (t + (np.array(data.shape) - 1) * s - t_ref) / s_ref
    if np.any(hi < 0) or np.any(lo > np.array(shape) - 1):
        raise InputError(f"{layer.name!r} {data.shape} and {reference.name!r} {tuple(shape)} do not overlap "
                         "in world coordinates (check the layers' scale and translate)")
    grid = np.indices(shape, dtype=np.float64)
    coords = [(g * sr + tr - tt) / ss for g, sr, tr, tt, ss in zip(grid, s_ref, t_ref, t, s)]
    out = ndi.map_coordinates(data.astype(np.float32 if order else data.dtype), coords, order=order, mode="nearest")
    show_info(f"imse-study: resampled {layer.name!r} {data.shape} onto the grid of {reference.name!r} {tuple(shape)}")
    return out.astype(data.dtype) if order == 0 else out


def put_layer(viewer, name: str, kind: str, data, **kwargs):
    """Add layer ``name``, or update it in place when a layer of that name, kind and dimension exists.

    Updating in place keeps the user's display settings and avoids napari's slow layer removal
    (a garbage collection per removed layer) on every re-run.
    """
    from napari.layers import Shapes, Vectors

    cls = {"image": Image, "labels": Labels, "shapes": Shapes, "vectors": Vectors}[kind]
    layer = viewer.layers[name] if name in viewer.layers else None  # noqa: SIM401 - a proxy: use isinstance
    if layer is not None and isinstance(layer, cls) and (kind not in ("image", "labels") or layer.ndim == np.ndim(data)):
        if kind == "shapes":
            layer.data = []
            layer.add(data, shape_type=kwargs.get("shape_type", "path"), edge_width=kwargs.get("edge_width"),
                      edge_color=kwargs.get("edge_color"))
        else:
            layer.data = data
        for key in ("scale", "translate", "metadata", "contrast_limits"):
            if key in kwargs:
                setattr(layer, key, kwargs[key])
        layer.visible = True
        return layer
    if layer is not None:
        viewer.layers.remove(name)
    return getattr(viewer, f"add_{kind}")(data, name=name, **kwargs)


def _modality(choice: str, layer) -> str | None:
    if choice and choice != AUTO:
        return choice
    meta = getattr(layer, "metadata", {}) or {}
    return meta.get("modality") or infer_modality(layer.name)


# ---------------------------------------------------------------------------------------------
# Evaluators
# ---------------------------------------------------------------------------------------------


def _shipped_modality(name: str) -> str | None:
    return infer_modality(name)


def load_evaluator(choice: str, checkpoint: str | Path | None, wanted: list[str | None]):
    """``(model, meta, label)`` for the widget's evaluator choice.

    ``auto`` picks the shipped evaluator trained on the first modality of ``wanted`` that has one.
    """
    shipped = available_pretrained()
    if choice == CHECKPOINT:
        path = Path(str(checkpoint)) if checkpoint else None
        if path is None or str(checkpoint) in ("", ".") or not path.is_file():
            raise InputError("no evaluator: choose a checkpoint file (.pt) or a shipped evaluator "
                             "(train one with `imse-study train-evaluator`)")
        key = str(path.resolve())
    elif choice == AUTO or not choice:
        if not shipped:
            raise InputError("no evaluator: none is shipped with this installation; choose a checkpoint file "
                             "(train one with `imse-study train-evaluator`)")
        key = next((n for m in wanted if m for n in shipped if _shipped_modality(n) == m), None)
        if key is None:
            known = ", ".join(f"{n} ({_shipped_modality(n)})" for n in shipped)
            raise InputError(f"no shipped evaluator for the modalities {[m for m in wanted if m] or 'unknown'}; "
                             f"shipped: {known}. Name the layers by modality (e.g. 't1', 'ct'), "
                             "choose the evaluator by name or a checkpoint file")
    else:
        if choice not in shipped:
            raise InputError(f"no shipped evaluator called {choice!r}; available: {', '.join(shipped) or 'none'}")
        key = choice
    if key not in _MODELS:
        try:
            model, meta = load_any(key)
        except Exception as err:  # a damaged or foreign checkpoint file
            raise InputError(f"cannot load the evaluator {key}: {err}") from err
        model.eval()
        _MODELS[key] = (model, meta)
    model, meta = _MODELS[key]
    _MODEL_KEYS[Path(key).name] = key
    return model, meta, Path(key).name


def _apply(fn, model, meta, ref_layer, ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``fn`` (error_map_array / translate_array) on two arrays on ``ref_layer``'s grid, with its geometry."""
    if meta.dim > ref.ndim:
        raise InputError(f"a {meta.dim}D evaluator cannot be applied to {ref.ndim}D layers")
    return fn(model, ref, other, meta.dim, affine=layer_affine(ref_layer), evaluator_spacing=evaluator_spacing(meta))


# ---------------------------------------------------------------------------------------------
# Widgets
# ---------------------------------------------------------------------------------------------


class _Base(Container):
    title = ""

    def __init__(self, napari_viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.status = Label(value="", label="status")
        self.status.native.setWordWrap(True)
        self.last_message = ""
        events = self.viewer.layers.events
        for name in ("inserted", "removed", "moved"):
            getattr(events, name).connect(self._refresh)

    def _refresh(self, event=None) -> None:
        self.reset_choices()

    def _image_names(self, widget=None) -> list[str]:
        return input_names(self.viewer)

    def _label_names(self, widget=None) -> list[str]:
        return [NONE] + [layer.name for layer in self.viewer.layers if isinstance(layer, Labels)]

    def _evaluator_choices(self, widget=None) -> list[str]:
        return [AUTO, *available_pretrained(), CHECKPOINT]

    def _say(self, message: str, error: bool = False) -> None:
        self.last_message = message
        self.status.value = message
        (show_error if error else show_info)(f"imse-study {self.title}: {message}")

    def _guarded(self, fn) -> None:
        try:
            fn()
        except InputError as err:
            self._say(str(err), error=True)
        except ValueError as err:  # the package's own validation, e.g. intensities or sizes
            self._say(f"cannot run: {err}", error=True)


class ErrorMapWidget(_Base):
    """Reference + other + evaluator -> the layer "IMSE error" (E(reference, other)) with its colour bar,
    a legend (units, signs) and mean |E| over the joint foreground read against the evaluator's floor."""

    title = "Error map"

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self.reference = ComboBox(label="reference", choices=self._input_names,
                                  tooltip="image in the evaluator's modality (the evaluator's channel 0)")
        self.other = ComboBox(label="other", choices=self._input_names, tooltip="image of any other modality")
        self.evaluator = ComboBox(label="evaluator", choices=self._evaluator_choices,
                                  tooltip="'auto': the shipped evaluator of the reference's modality")
        self.checkpoint = FileEdit(label="checkpoint", filter="*.pt", mode="r")
        self.run_button = PushButton(text="Compute error map")
        self.mean_error = Label(value="", label="mean |E|")
        self.mean_error.tooltip = "mean |E| over the joint foreground (either image above -0.9 in [-1, 1])"
        self.reading = Label(value="", label="reading")
        self.reading.native.setWordWrap(True)
        self.run_button.changed.connect(self.run)
        self.extend([self.reference, self.other, self.evaluator, self.checkpoint, self.run_button,
                     self.mean_error, self.reading, self.status])
        self.result: dict = {}
        self._auto: tuple = ()
        self._pick()

    def _pick(self) -> None:
        """Defaults: a ct and a t1 layer when there are, else two different layers; remembered, so
        that later refreshes keep a pair the user chose."""
        _pick_pair(self.reference, self.other, self.viewer, prefer=EVALUATOR_PREFERENCE)
        self._auto = (self.reference.value, self.other.value)

    def _input_names(self, widget=None) -> list[str]:
        return input_names(self.viewer)

    def _refresh(self, event=None) -> None:
        """New choices when layers come and go; two different layers again if they became one."""
        chosen = (self.reference.value, self.other.value)
        super()._refresh(event)
        now = (self.reference.value, self.other.value)
        if chosen == self._auto or now[0] is None or now[0] == now[1]:
            self._pick()

    def run(self, *_):
        self._guarded(self._run)

    def _run(self):
        ref_layer = _layer(self.viewer, self.reference.value, what="reference image")
        oth_layer = _layer(self.viewer, self.other.value, what="other image")
        _same_dim(ref_layer, oth_layer)
        ref_mod = _modality(AUTO, ref_layer)
        model, meta, name = load_evaluator(self.evaluator.value, self.checkpoint.value, [ref_mod])
        if ref_mod is not None and ref_mod != meta.modality:
            show_info(f"imse-study: {ref_layer.name!r} looks like {ref_mod}, but the evaluator {name} was trained on "
                      f"{meta.modality}; its reference should be a {meta.modality} image")
        other = on_grid(oth_layer, ref_layer)
        oth_mod = _modality(AUTO, oth_layer) or "mr"
        ref = to_unit_range(np.asarray(ref_layer.data), meta.modality, name=repr(ref_layer.name))
        oth = to_unit_range(other, oth_mod, name=repr(oth_layer.name))
        start = time.perf_counter()
        error = _apply(error_map_array, model, meta, ref_layer, ref, oth).astype(np.float32)
        mean_abs = float(np.abs(error).mean())
        score = foreground_score(ref, oth, error)
        floor = load_floor(_MODEL_KEYS.get(name, name))
        said = reading(score, floor, oth_mod)
        limit = nice_limit(float(np.percentile(np.abs(error), 99.5)) or float(np.abs(error).max()))
        kwargs = {"colormap": ERROR_COLORMAP, "contrast_limits": (-limit, limit), "blending": "translucent",
                  "opacity": 0.9, "scale": ref_layer.scale, "translate": ref_layer.translate,
                  "metadata": {"mean_abs_error": mean_abs, "foreground_mean_abs_error": score, "reading": said,
                               "evaluator": name, "reference": ref_layer.name, "other": oth_layer.name,
                               OUTPUT_KEY: "error map"}}
        layer = put_layer(self.viewer, ERROR_LAYER, "image", error, **kwargs)
        here, ref_index = self.viewer.layers.index(layer), self.viewer.layers.index(ref_layer)
        if here != ref_index + 1:  # just above the reference
            self.viewer.layers.move(here, ref_index + 1 if here > ref_index else ref_index)
        ref_layer.visible = True
        show_legend(self.viewer, layer, [
            f"E({ref_layer.name}, {oth_layer.name}) by {name}",
            "colour bar: E in image units (images in [-1, 1])",
            "E = reference - other as if in the reference's contrast",
            "red, E > 0: other darker than predicted; blue, E < 0: brighter",
            f"mean |E| {score:.3f} in the joint foreground: {verdict(score, floor, oth_mod)}"])
        self.mean_error.value = f"{score:.4f}"
        self.reading.value = said
        self.result = {"error": error, "mean_abs_error": mean_abs, "score": score, "reading": said,
                       "evaluator": name}
        self._say(f"E({ref_layer.name}, {oth_layer.name}) with {name}: mean |E| = {score:.4f} in the joint "
                  f"foreground, {said} ({time.perf_counter() - start:.2f} s)")
        return layer


def input_names(viewer) -> list[str]:
    """The image layers a user may feed to a widget: all but the widgets' own outputs (error maps,
    translations), which are results, not images of a modality."""
    return [layer.name for layer in viewer.layers
            if isinstance(layer, Image) and not (layer.metadata or {}).get(OUTPUT_KEY) and layer.name != ERROR_LAYER]


def show_legend(viewer, layer, lines: list[str]) -> None:
    """The error map's legend in the canvas: the layer's colour bar (E in image units) and a text
    overlay (``lines``: what was compared, what each sign means, the reading of the score)."""
    if hasattr(layer, "colorbar"):  # napari >= 0.6 draws a colour bar per layer
        layer.colorbar.size = (20, 260)
        layer.colorbar.font_size = 10
        layer.colorbar.position = "top_right"
        layer.colorbar.visible = True
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9; viewer.text_overlay before
    overlay = canvas.overlays["text"] if canvas is not None and "text" in canvas.overlays else viewer.text_overlay
    overlay.text = "\n".join(lines)
    overlay.position = "bottom_left"
    overlay.font_size = 9
    overlay.color = "white"
    overlay.visible = True


def nice_limit(value: float) -> float:
    """A symmetric colour limit rounded up to a round number (0.05 steps up to 1), so that the colour
    bar's end ticks read as plain numbers."""
    step = 0.05 if value <= 1 else 0.25
    return float(max(step, np.ceil(value / step - 1e-9) * step))


class TranslateWidget(_Base):
    """Reference + source -> the source's anatomy in the reference's contrast (section 4.4)."""

    title = "Translate"

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self.reference = ComboBox(label="reference", choices=lambda _=None: input_names(self.viewer),
                                  tooltip="image in the evaluator's modality: gives the contrast")
        self.source = ComboBox(label="source", choices=lambda _=None: input_names(self.viewer),
                               tooltip="image to translate")
        self.evaluator = ComboBox(label="evaluator", choices=self._evaluator_choices)
        self.checkpoint = FileEdit(label="checkpoint", filter="*.pt", mode="r")
        self.run_button = PushButton(text="Translate")
        self.run_button.changed.connect(self.run)
        self.extend([self.reference, self.source, self.evaluator, self.checkpoint, self.run_button, self.status])
        self.result: dict = {}
        _pick_pair(self.reference, self.source, self.viewer, prefer=EVALUATOR_PREFERENCE)

    def run(self, *_):
        self._guarded(self._run)

    def _run(self):
        ref_layer = _layer(self.viewer, self.reference.value, what="reference image")
        src_layer = _layer(self.viewer, self.source.value, what="source image")
        _same_dim(ref_layer, src_layer)
        ref_mod = _modality(AUTO, ref_layer)
        model, meta, name = load_evaluator(self.evaluator.value, self.checkpoint.value, [ref_mod])
        source = on_grid(src_layer, ref_layer)
        ref = to_unit_range(np.asarray(ref_layer.data), meta.modality, name=repr(ref_layer.name))
        src = to_unit_range(source, _modality(AUTO, src_layer) or "mr", name=repr(src_layer.name))
        out = _apply(translate_array, model, meta, ref_layer, ref, src).astype(np.float32)
        layer_name = f"{src_layer.name} translated to {meta.modality}"
        layer = put_layer(self.viewer, layer_name, "image", out, colormap="gray", contrast_limits=(-1.0, 1.0),
                          scale=ref_layer.scale, translate=ref_layer.translate,
                          metadata={"modality": meta.modality, "evaluator": name, OUTPUT_KEY: "translation"})
        self.result = {"translated": out, "evaluator": name}
        self._say(f"{src_layer.name} translated into {meta.modality} with {name}")
        return layer


class QAWidget(_Base):
    """Moved + target (+ the target's labels) + evaluator -> score, misalignment estimate with its
    interval, p_failed (with the evaluator's calibration), the layer "QA error" and the flagged
    regions as the labels layer "QA regions" (:func:`imse_study.qa.assess_arrays`)."""

    title = "QA"

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self.moved = ComboBox(label="moved", choices=self._image_names, tooltip="the registered (moved) image")
        self.target = ComboBox(label="target", choices=self._image_names, tooltip="the image it was registered to")
        self.labels = ComboBox(label="target labels", choices=self._label_names,
                               tooltip="optional: the error per label instead of connected regions")
        self.evaluator = ComboBox(label="evaluator", choices=self._evaluator_choices,
                                  tooltip="'auto': the shipped evaluator of the target's modality, else the moved one's")
        self.checkpoint = FileEdit(label="checkpoint", filter="*.pt", mode="r")
        self.run_button = PushButton(text="Assess registration")
        self.score = Label(value="", label="score")
        self.estimate = Label(value="", label="misalignment")
        self.failure = Label(value="", label="p_failed")
        self.run_button.changed.connect(self.run)
        self.extend([self.moved, self.target, self.labels, self.evaluator, self.checkpoint, self.run_button,
                     self.score, self.estimate, self.failure, self.status])
        self.result = None
        _pick_pair(self.moved, self.target, self.viewer, prefer=("t2", "t1"))

    def run(self, *_):
        self._guarded(self._run)

    def _run(self):
        from imse_study.qa.assess import assess_arrays, evaluator_calibration, reference_side

        mov_layer = _layer(self.viewer, self.moved.value, what="moved image")
        tgt_layer = _layer(self.viewer, self.target.value, what="target image")
        _same_dim(mov_layer, tgt_layer)
        modality = {"moved": _modality(AUTO, mov_layer), "target": _modality(AUTO, tgt_layer)}
        model, meta, name = load_evaluator(self.evaluator.value, self.checkpoint.value,
                                           [modality["target"], modality["moved"]])
        notes: list[str] = []
        side = reference_side(meta.modality, modality["moved"], modality["target"], notes)
        scale = {k: v or "mr" for k, v in modality.items()}
        scale[side] = meta.modality
        moved = to_unit_range(on_grid(mov_layer, tgt_layer), scale["moved"], name=repr(mov_layer.name))
        target = to_unit_range(np.asarray(tgt_layer.data), scale["target"], name=repr(tgt_layer.name))
        labels = None
        if self.labels.value and self.labels.value != NONE:
            labels = on_grid(_layer(self.viewer, self.labels.value, Labels, "label layer"), tgt_layer, order=0)
        if meta.dim > target.ndim:
            raise InputError(f"a {meta.dim}D evaluator cannot be applied to {target.ndim}D layers")
        source = str(self.checkpoint.value) if self.evaluator.value == CHECKPOINT else name
        calibration, problem = evaluator_calibration(source)
        start = time.perf_counter()
        result = assess_arrays(model, meta, moved, target, layer_affine(tgt_layer), reference=side, labels=labels,
                               calibration=calibration, calibration_problem=problem, evaluator=name, notes=notes)
        geometry = {"scale": tgt_layer.scale, "translate": tgt_layer.translate}
        limit = float(np.percentile(np.abs(result.error_map), 99.5)) or 1e-3
        put_layer(self.viewer, QA_ERROR_LAYER, "image", result.error_map.astype(np.float32), colormap=ERROR_COLORMAP,
                  contrast_limits=(-limit, limit), blending="translucent", opacity=0.9,
                  metadata={"score": result.score, "evaluator": name, OUTPUT_KEY: "qa error map"}, **geometry)
        put_layer(self.viewer, QA_REGIONS_LAYER, "labels", result.region_map, opacity=0.5,
                  metadata={"regions": result.regions}, **geometry)
        self.score.value = f"{result.score:.4f}"
        if result.calibrated:
            lo, hi = result.misalignment_mm_interval
            plo, phi = result.p_failed_interval
            self.estimate.value = f"{result.misalignment_mm:.1f} mm [{lo:.1f}, {hi:.1f}]"
            self.failure.value = f"{result.p_failed:.2f} [{plo:.2f}, {phi:.2f}]"
        else:
            self.estimate.value = self.failure.value = "not calibrated"
        self.result = result
        extra = "" if result.calibrated else f" ({result.calibration})"
        self._say(f"{result.reading}{extra} [{name}, {time.perf_counter() - start:.2f} s]")
        return result


class _Progress(QObject):
    step = Signal(int, int, float)


class RegisterWidget(_Base):
    """Classic registration (Eq. 1, ``optimise_field``) of moving to target in a background thread."""

    title = "Register"

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        modalities = [AUTO, *MODALITIES]
        self.moving = ComboBox(label="moving", choices=self._image_names)
        self.target = ComboBox(label="target", choices=self._image_names)
        self.moving_labels = ComboBox(label="moving labels", choices=self._label_names,
                                      tooltip="warped with the result (nearest neighbour)")
        self.target_labels = ComboBox(label="target labels", choices=self._label_names,
                                      tooltip="with moving labels: Dice before and after")
        self.similarity = ComboBox(label="similarity", choices=list(SIMILARITIES), value="imse")
        self.evaluator = ComboBox(label="evaluator", choices=self._evaluator_choices,
                                  tooltip="for imse: 'auto' picks a shipped evaluator of the target's "
                                          "(else the moving image's) modality")
        self.checkpoint = FileEdit(label="checkpoint", filter="*.pt", mode="r")
        self.moving_modality = ComboBox(label="moving modality", choices=modalities, value=AUTO)
        self.target_modality = ComboBox(label="target modality", choices=modalities, value=AUTO)
        self.iterations = SpinBox(label="iterations", value=200, min=MIN_ITERATIONS, max=10000, step=10,
                                  tooltip="optimiser steps in all, over the affine stage and 3 levels")
        self.dimension = ComboBox(label="dimension", choices=["auto", "2", "3"], value="auto",
                                  tooltip="2: slice by slice (never through-plane); 3: in 3D; auto: 2 for a stack of "
                                          "2D slices (few, or far apart), 3 for a volume")
        self.deformation = ComboBox(label="show deformation", choices=["grid", "vectors", "none"], value="grid")
        self.run_button = PushButton(text="Register")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=100)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.extend([self.moving, self.target, self.moving_labels, self.target_labels, self.similarity,
                     self.evaluator, self.checkpoint, self.moving_modality, self.target_modality,
                     self.iterations, self.dimension, self.deformation, self.run_button, self.cancel_button, self.progress,
                     self.status])
        self._emitter = _Progress()
        self._emitter.step.connect(self._on_step)
        self._cancel = False
        self.worker = None
        self.running = False
        self.result: dict = {}
        _pick_pair(self.moving, self.target, self.viewer, prefer=("moving", "target"))
        _pick_labels(self.moving_labels, self.target_labels)

    # -- actions -------------------------------------------------------------------------------

    def run(self, *_):
        if self.running:
            self._say("a registration is already running", error=True)
            return
        self._guarded(self._start)

    def cancel(self, *_):
        if self.running:
            self._cancel = True
            self.status.value = "cancelling..."

    def _similarity(self, mov_layer, tgt_layer, plan):
        """``(similarity, its description, working spacing)``: an evaluator's training spacing, else None."""
        name = self.similarity.value
        from imse_study.losses.similarity import EVALUATOR_SIMILARITIES, similarity

        if name not in EVALUATOR_SIMILARITIES:
            return similarity(name), name, None
        mov_mod = _modality(self.moving_modality.value, mov_layer)
        tgt_mod = _modality(self.target_modality.value, tgt_layer)
        model, meta, ev_name = load_evaluator(self.evaluator.value, self.checkpoint.value, [tgt_mod, mov_mod])
        for role, mod, layer in (("moving", mov_mod, mov_layer), ("target", tgt_mod, tgt_layer)):
            if mod is None and meta.modality not in (mov_mod, tgt_mod):
                raise InputError(f"cannot tell the modality of the {role} layer {layer.name!r} from its name: "
                                 f"choose it under '{role} modality'")
        if meta.modality not in (mov_mod, tgt_mod):
            raise InputError(f"the evaluator {ev_name} was trained on {meta.modality} images, but the moving image is "
                             f"{mov_mod} and the target {tgt_mod}: one of them must be {meta.modality}. "
                             "Choose another evaluator, or another similarity (mi, ncc, mind)")
        if meta.dim != plan.dim:
            raise InputError(f"the evaluator {ev_name} is {meta.dim}D and these layers are registered in {plan.dim}D "
                             f"({plan.reason}): choose dimension {meta.dim}, a {plan.dim}D evaluator (a checkpoint "
                             "file), or mi, ncc or mind")
        # the unknown one is simply "not the evaluator's modality"
        mov_mod = mov_mod or "other"
        tgt_mod = tgt_mod or "other"
        sim = similarity(name, evaluator=model, evaluator_modality=meta.modality,
                         moving_modality=mov_mod, target_modality=tgt_mod)
        return sim, f"{name} ({ev_name}, {mov_mod} -> {tgt_mod})", evaluator_spacing(meta)

    def prepare(self) -> dict:
        """Check the inputs and build everything the optimisation needs (main thread)."""
        mov_layer = _layer(self.viewer, self.moving.value, what="moving image")
        tgt_layer = _layer(self.viewer, self.target.value, what="target image")
        layers = [mov_layer, tgt_layer]
        mov_lab = tgt_lab = None
        if self.moving_labels.value not in (None, NONE):
            mov_lab = _layer(self.viewer, self.moving_labels.value, Labels, what="moving label layer")
            layers.append(mov_lab)
        if self.target_labels.value not in (None, NONE):
            tgt_lab = _layer(self.viewer, self.target_labels.value, Labels, what="target label layer")
            layers.append(tgt_lab)
        _same_dim(*layers)
        if int(self.iterations.value) < MIN_ITERATIONS:
            raise InputError(f"iterations must be at least {MIN_ITERATIONS} (one per stage: affine and 3 levels)")
        if mov_layer is tgt_layer:
            raise InputError("moving and target are the same layer")
        affine = layer_affine(tgt_layer)
        try:
            dim = None if self.dimension.value == "auto" else int(self.dimension.value)
            plan = registration_plan(tgt_layer.data.shape, affine, dim)
        except ValueError as err:
            raise InputError(str(err).replace("--dim", "dimension")) from None
        sim, sim_name, spacing = self._similarity(mov_layer, tgt_layer, plan)
        moving = to_unit_range(on_grid(mov_layer, tgt_layer), _modality(self.moving_modality.value, mov_layer) or "mr",
                               name=repr(mov_layer.name))
        target = to_unit_range(np.asarray(tgt_layer.data), _modality(self.target_modality.value, tgt_layer) or "mr",
                               name=repr(tgt_layer.name))
        return {
            "moving_layer": mov_layer, "target_layer": tgt_layer, "similarity": sim, "similarity_name": sim_name,
            "moving": np.ascontiguousarray(moving, dtype=np.float32),
            "target": np.ascontiguousarray(target, dtype=np.float32), "affine": affine, "plan": plan,
            "working_spacing": spacing, "iterations": int(self.iterations.value),
            "moving_labels": None if mov_lab is None else on_grid(mov_lab, tgt_layer, order=0),
            "moving_labels_name": None if mov_lab is None else mov_lab.name,
            "target_labels": None if tgt_lab is None else np.asarray(tgt_lab.data),
        }

    def _start(self):
        from napari.qt.threading import create_worker

        job = self.prepare()
        self._job = job
        self._cancel = False
        self.result = {}
        self.running = True
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.progress.max = job["iterations"] * job["plan"].n_slices
        self.progress.value = 0
        self._start_time = time.perf_counter()
        self.status.value = f"registering with {job['similarity_name']} in {job['plan'].reason}..."

        def callback(step, total, loss):
            self._emitter.step.emit(int(step), int(total), float(loss))
            return not self._cancel

        def optimise():
            # errors come back as values: a worker that raises re-raises in napari's event loop
            from imse_study.registration.files import register_arrays

            try:
                field = register_arrays(job["moving"], job["target"], job["affine"], job["similarity"], job["plan"],
                                        job["working_spacing"], callback=callback, iterations=job["iterations"])
            except Exception as err:  # noqa: BLE001 - shown to the user in _on_error
                return ("error", err)  # a tuple: superqt re-raises a returned exception itself
            return ("ok", field)

        worker = create_worker(optimise)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()

    # -- worker signals (main thread) ------------------------------------------------------------

    def _on_step(self, step: int, total: int, loss: float) -> None:
        self.progress.max = total
        self.progress.value = step
        if not self._cancel:
            plan, per_slice = self._job["plan"], self._job["iterations"]
            where = f"slice {(step - 1) // per_slice + 1}/{plan.n_slices}, " if plan.slicewise else ""
            self.status.value = f"{where}step {step}/{total}, loss {loss:.4f}"

    def _on_error(self, err: Exception) -> None:
        from imse_study.registration.optimise import RegistrationCancelled

        if isinstance(err, RegistrationCancelled):
            self.result = {"cancelled": True}
            self._say("registration cancelled; no layer was added")
        else:
            self.result = {"error": err}
            self._say(f"registration failed: {type(err).__name__}: {err}", error=True)

    def _on_finished(self) -> None:
        self.running = False
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self.worker = None

    def _on_returned(self, value: tuple) -> None:
        kind, payload = value
        if kind == "error":
            self._on_error(payload)
        else:
            self._on_done(payload)

    def _on_done(self, field: np.ndarray) -> None:
        try:
            self._add_results(field)
        except Exception as err:  # noqa: BLE001 - never leave a traceback in the viewer
            self.result = {"error": err}
            self._say(f"could not add the results: {type(err).__name__}: {err}", error=True)

    def _add_results(self, field: np.ndarray) -> None:
        from imse_study.metrics import dice
        from imse_study.warp import warp

        job = self._job
        seconds = time.perf_counter() - self._start_time
        field = np.ascontiguousarray(field, dtype=np.float32)
        tgt_layer = job["target_layer"]
        geometry = {"scale": tgt_layer.scale, "translate": tgt_layer.translate}
        disp = torch.from_numpy(field)[None]
        warped = np.clip(warp(torch.from_numpy(job["moving"])[None, None], disp)[0, 0].numpy(), -1.0, 1.0)
        name = job["moving_layer"].name
        self._replace(f"{name} registered", "image", warped, colormap="gray", contrast_limits=(-1.0, 1.0),
                      metadata={"similarity": job["similarity_name"]}, **geometry)
        self._add_deformation(f"{name} deformation", field, geometry)
        out = {"displacement": field, "warped": warped, "seconds": seconds, "similarity": job["similarity_name"]}
        message = f"done with {job['similarity_name']} in {job['plan'].reason}, {seconds:.1f} s"
        if job["moving_labels"] is not None:
            labels = job["moving_labels"]
            lab_t = torch.from_numpy(np.ascontiguousarray(labels.astype(np.int64)))[None, None]
            warped_labels = warp(lab_t, disp, mode="nearest")[0, 0].numpy().astype(labels.dtype)
            self._replace(f"{job['moving_labels_name']} warped", "labels", warped_labels, opacity=0.4, **geometry)
            out["warped_labels"] = warped_labels
            if job["target_labels"] is not None:
                before = dice(labels, job["target_labels"])["mean"]
                after = dice(warped_labels, job["target_labels"])["mean"]
                out.update(dice_before=before, dice_after=after)
                message += f"; Dice {before:.3f} -> {after:.3f}"
        self.result = out
        self._say(message)

    def _replace(self, layer_name: str, kind: str, data, **kwargs):
        return put_layer(self.viewer, layer_name, kind, data, **kwargs)

    def _add_deformation(self, layer_name: str, field: np.ndarray, geometry: dict) -> None:
        style = self.deformation.value
        if style == "none":
            return
        ndim = field.shape[0]
        shape = field.shape[1:]
        if style == "grid" and ndim == 3:
            show_info("imse-study: the deformation of a 3D registration is shown as vectors")
            style = "vectors"
        step = max(2, round(max(shape) / 20))
        if style == "vectors":
            idx = np.stack(np.meshgrid(*[np.arange(step // 2, s, step) for s in shape], indexing="ij"), -1).reshape(-1, ndim)
            vec = field[(slice(None), *idx.T)].T
            data = np.stack([idx.astype(np.float32), vec.astype(np.float32)], axis=1)
            self._replace_vectors(layer_name, data, geometry)
            return
        # grid: the target's grid lines drawn where they sample the moving image (p + u(p))
        h, w = shape
        paths = []
        for r in list(range(0, h, step)) + [h - 1]:
            c = np.arange(w)
            paths.append(np.stack([r + field[0, r, c], c + field[1, r, c]], -1))
        for c in list(range(0, w, step)) + [w - 1]:
            r = np.arange(h)
            paths.append(np.stack([r + field[0, r, c], c + field[1, r, c]], -1))
        put_layer(self.viewer, layer_name, "shapes", paths, shape_type="path", edge_color="yellow",
                  edge_width=0.4, opacity=0.7, metadata={"displacement": field}, **geometry)

    def _replace_vectors(self, layer_name: str, data: np.ndarray, geometry: dict) -> None:
        put_layer(self.viewer, layer_name, "vectors", data, edge_color="yellow", edge_width=0.3, length=1.0,
                  **geometry)


def _pick_pair(first: ComboBox, second: ComboBox, viewer, prefer: tuple[str, str]) -> None:
    """Sensible defaults: names containing ``prefer[0]`` / ``prefer[1]``, else two different layers."""
    names = list(first.choices)
    if not names:
        return
    def pick(key):
        return next((n for n in names if key in n.lower().split() or infer_modality(n) == key), None)

    a, b = pick(prefer[0]), pick(prefer[1])
    first.value = a or names[-1]
    rest = [n for n in names if n != first.value]
    second.value = b if b and b != first.value else (rest[-1] if rest else first.value)


def _pick_labels(moving: ComboBox, target: ComboBox) -> None:
    names = list(moving.choices)
    m = next((n for n in names if "moving" in n.lower()), None)
    t = next((n for n in names if "target" in n.lower()), None)
    if m:
        moving.value = m
    if t:
        target.value = t
