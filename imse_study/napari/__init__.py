"""The napari plugin of imse_study (npe2 manifest ``napari.yaml``, plugin name ``imse-study``).

Reader and writer for NIfTI, the phantom as sample data, and three dock widgets: "Error map",
"Translate" and "Register". Importing this package does not import napari or Qt; the widgets
module does.
"""

__all__: list[str] = []
