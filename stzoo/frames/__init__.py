"""Frame sequences in and out: the files users read and write, and the arrays models take.

What is where:

* :mod:`stzoo.frames.read`: files, folders, images and videos to arrays (:func:`read_frames`), with
  the checks on sizes (decompression bombs), FIFOs / devices and 16-bit / float pixels;
* :mod:`stzoo.frames.layout`: which axis is which (:data:`LAYOUTS`; :func:`infer_layout`, the one
  rule that predicting and fine-tuning both read arrays with), grey ↔ RGB (:data:`LUMA`,
  :func:`convert_channels`), and :class:`OutputFormat`, the record that returns a forecast in the
  input's form;
* :mod:`stzoo.frames.prepare`: arrays, tensors, lists and paths to the model's ``B×T×C×H×W`` tensor
  (:func:`prepare_frames`) and back (``OutputFormat.restore``), and :class:`FramesWarning`;
* :mod:`stzoo.frames.write`: GIFs, videos, ``.npy`` files and folders of PNGs (:func:`write_frames`);
* :mod:`stzoo.frames.viz`: side-by-side comparison strips and GIFs of forecasts.

The public names of the first four are re-exported here: ``from stzoo.frames import read_frames``.
"""

from stzoo.frames.layout import (
    LAYOUTS,
    LUMA,
    OutputFormat,
    convert_channels,
    convertible_channels,
    infer_frame_layout,
    infer_layout,
)
from stzoo.frames.prepare import FramesWarning, frames_layout, peek_shape, prepare_frames
from stzoo.frames.read import ARRAY_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_frames
from stzoo.frames.write import (
    OUTPUT_KINDS,
    PNG_FRAME_NAME,
    VIDEO_WRITE_CODECS,
    check_output_path,
    output_kind,
    to_thwc,
    write_frames,
    write_gif,
    write_png_folder,
    write_video,
)

__all__ = [
    "ARRAY_SUFFIXES",
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "LUMA",
    "OUTPUT_KINDS",
    "PNG_FRAME_NAME",
    "VIDEO_SUFFIXES",
    "VIDEO_WRITE_CODECS",
    "FramesWarning",
    "OutputFormat",
    "check_output_path",
    "convert_channels",
    "convertible_channels",
    "frames_layout",
    "infer_frame_layout",
    "infer_layout",
    "output_kind",
    "peek_shape",
    "prepare_frames",
    "read_frames",
    "to_thwc",
    "write_frames",
    "write_gif",
    "write_png_folder",
    "write_video",
]
