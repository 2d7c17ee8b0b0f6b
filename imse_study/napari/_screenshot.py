"""Regenerate the README's screenshot of the "Error map" widget on the phantom.

``xvfb-run -a python -m imse_study.napari._screenshot docs/napari_error_map.png`` (a display is
needed: napari renders with OpenGL). Shows E(target ct, moving t1) on the sample registration pair:
two phantom subjects that are not aligned, so the map is far from zero along every edge.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(path: str = "docs/napari_error_map.png") -> Path:
    import napari
    import npe2
    from qtpy.QtWidgets import QApplication
    from skimage.io import imsave

    npe2.PluginManager.instance().discover()
    viewer = napari.Viewer(show=True, title="napari: imse-study")
    viewer.window.resize(1300, 800)
    viewer.open_sample("imse-study", "phantom-pair-2d")
    for layer in viewer.layers:
        layer.visible = layer.name.startswith("target ct")
    _, widget = viewer.window.add_plugin_dock_widget("imse-study", "Error map")
    widget.run()
    for _ in range(20):
        QApplication.processEvents()
    viewer.reset_view()
    image = viewer.screenshot(canvas_only=False, flash=False)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    imsave(out, image, check_contrast=False)
    viewer.close()
    return out


if __name__ == "__main__":
    print(main(*sys.argv[1:2]))
