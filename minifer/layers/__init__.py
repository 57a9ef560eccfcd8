"""All layers; each module keeps a layer's forward and backward on one screen."""
from .activation import Dropout, ReLU
from .base import LAYERS, Layer, Parameter
from .conv import Conv2d
from .dense import Dense, Flatten
from .loss import DistillationLoss, SoftmaxCrossEntropy, log_softmax, soften, softmax
from .norm import BatchNorm1d, BatchNorm2d
from .pool import AvgPool2d, GlobalAvgPool2d, MaxPool2d

__all__ = ["Layer", "Parameter", "LAYERS", "Conv2d", "Dense", "Flatten", "ReLU", "Dropout",
           "BatchNorm1d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
           "SoftmaxCrossEntropy", "DistillationLoss", "softmax", "soften", "log_softmax"]
