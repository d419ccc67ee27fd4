"""Perception: measured, cheap visual cues of an image from real packaged models.

    from kever.tools.perception import Perceiver, Perception
    perceiver = Perceiver.load(extractors=("colour", "faces", "objects", "text"))
    p = perceiver.perceive("photo.jpg")

Extractors: ``colour`` (pixel statistics), ``faces`` (OpenCV Haar + fer's FER2013 model),
``objects`` (EfficientNet-Lite0, ImageNet-1k), ``text`` (rapidocr PP-OCRv4). Pose is not
measured: the only offline pose model (mediapipe 0.10.21) pins numpy<2 and protobuf<5, which
the rest of the stack (torch, transformers, onnxruntime) has moved past.
"""

from kever.tools.perception.fake import FakePerceiver
from kever.tools.perception.perceiver import EXTRACTORS, Perceiver
from kever.tools.perception.schema import Face, NamedColour, ObjectLabel, Perception, TextSpan

__all__ = ["EXTRACTORS", "Face", "FakePerceiver", "NamedColour", "ObjectLabel", "Perceiver", "Perception", "TextSpan"]
