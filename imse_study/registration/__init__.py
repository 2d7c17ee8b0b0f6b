"""Registration: similarities (one interface), classic optimisation (Eq. 1), VoxelMorph (Eq. 6-7),
reference tools (ANTs, elastix) and the evaluation table."""

from imse_study.registration.evaluate import (
    TestPairs, direction_name, evaluate, make_test_pairs, network_registrar, summarise,
)
from imse_study.registration.optimise import optimise_field
from imse_study.registration.network import RegistrationNet
from imse_study.losses.similarity import similarity
from imse_study.registration.learned import load_network, train_registration

__all__ = [
    "RegistrationNet", "TestPairs", "direction_name", "evaluate", "load_network", "make_test_pairs",
    "network_registrar", "optimise_field", "similarity", "summarise", "train_registration",
]
