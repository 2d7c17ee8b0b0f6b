"""Regenerate the README's screenshot of the "Error map" widget on the phantom.

``xvfb-run -a python -m imse_study.napari._screenshot docs/screenshots/napari_error_map.png`` (a
display is needed: napari renders with OpenGL). Shows E(ct, t1) of one aligned phantom test slice with
the shipped CT evaluator: the map with its colour bar and legend (units, what each sign means) and
the widget's reading of mean |E| against the evaluator's floor (aligned test pairs).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(path: str = "docs/screenshots/napari_error_map.png") -> Path:
    import napari
    import npe2
    from qtpy.QtWidgets import QApplication
    from skimage.io import imsave

    npe2.PluginManager.instance().discover()
    viewer = napari.Viewer(show=True, title="napari: imse-study")
    viewer.window.resize(1400, 850)
    viewer.open_sample("imse-study", "phantom-2d")
    for layer in viewer.layers:
        layer.visible = layer.name == "phantom ct"
    _, widget = viewer.window.add_plugin_dock_widget("imse-study", "Error map")
    widget.reference.value, widget.other.value = "phantom ct", "phantom t1"
    widget.run()
    for _ in range(20):
        QApplication.processEvents()
    viewer.reset_view()
    for _ in range(5):
        QApplication.processEvents()
    image = viewer.screenshot(canvas_only=False, flash=False)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    imsave(out, image, check_contrast=False)
    viewer.close()
    return out


if __name__ == "__main__":
    print(main(*sys.argv[1:2]))
