"""imse_study."""
