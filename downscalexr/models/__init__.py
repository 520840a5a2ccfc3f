"""Model families, seeded initialisation and static model facts."""

from downscalexr.models.init import build_seeded, init_weights
from downscalexr.models.lenet import LeNet
from downscalexr.models.mlp import MLP
from downscalexr.models.profile import count_params, forward_flops, model_bytes
from downscalexr.models.registry import create_model, list_models, register_model
from downscalexr.models.resnet import BasicBlock, ResNet

__all__ = [
    "LeNet",
    "MLP",
    "BasicBlock",
    "ResNet",
    "build_seeded",
    "count_params",
    "create_model",
    "forward_flops",
    "init_weights",
    "list_models",
    "model_bytes",
    "register_model",
]
