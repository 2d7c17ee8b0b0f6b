"""imse_study: IMSE (CVPR 2023) reproduced as a tool: phantom data, evaluator, registration, study."""
