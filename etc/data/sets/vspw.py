"""VSPW (Video Scene Parsing in the Wild, CVPR 2021), the 480p release: every frame labelled.

Layout: ``ROOT/{train,val,test}.txt`` list the videos, one name a line; a video is
``ROOT/data/<video>/origin/<frame>.jpg`` with ``ROOT/data/<video>/mask/<frame>.png``. One clip
per listed video, its frames in file-name order — the order the reference VSPW code
(VSPW_baseline's ``dataset.py``, ``VC_perclip.py``) and the CFFM/MRCFA loaders use.

Label convention, as those read the masks (``np.array(Image.open(mask))``: palette indices) and
then apply mmseg's ``reduce_zero_label``: value 0 ("others") and 255 are ignored, values
1..124 are the 124 classes, train id = value − 1. Every frame has its label, so each frame is
both a labelled frame and a dense label (mVC on the ground truth, as ``VC_perclip.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path

from etc.core.errors import EtcError
from etc.data.frames import Clip, Frame
from etc.data.label_table import IGNORE, LabelTable, make_lut
from etc.data.sets import DatasetSpec

# value 1..124 (the release's label_num_dic_final.json, without 0 "others")
CLASSES = (
    "wall", "ceiling", "door", "stair", "ladder", "escalator", "Playground_slide",
    "handrail_or_fence", "window", "rail", "goal", "pillar", "pole", "floor", "ground", "grass",
    "sand", "athletic_field", "road", "path", "crosswalk", "building", "house", "bridge", "tower",
    "windmill", "well_or_well_lid", "other_construction", "sky", "mountain", "stone", "wood", "ice",
    "snowfield", "grandstand", "sea", "river", "lake", "waterfall", "water",
    "billboard_or_Bulletin_Board", "sculpture", "pipeline", "flag", "parasol_or_umbrella",
    "cushion_or_carpet", "tent", "roadblock", "car", "bus", "truck", "bicycle", "motorcycle",
    "wheeled_machine", "ship_or_boat", "raft", "airplane", "tyre", "traffic_light", "lamp",
    "person", "cat", "dog", "horse", "cattle", "other_animal", "tree", "flower", "other_plant",
    "toy", "ball_net", "backboard", "skateboard", "bat", "ball",
    "cupboard_or_showcase_or_storage_rack", "box", "traveling_case_or_trolley_case", "basket",
    "bag_or_package", "trash_can", "cage", "plate", "tub_or_bowl_or_pot", "bottle_or_cup",
    "barrel", "fishbowl", "bed", "pillow", "table_or_desk", "chair_or_seat", "bench", "sofa",
    "shelf", "bathtub", "gun", "commode", "roaster", "other_machine", "refrigerator",
    "washing_machine", "Microwave_oven", "fan", "curtain", "textiles", "clothes",
    "painting_or_poster", "mirror", "flower_pot_or_vase", "clock", "book", "tool", "blackboard",
    "tissue", "screen_or_television", "computer", "printer", "Mobile_phone", "keyboard",
    "other_electronic_product", "fruit", "food", "instrument", "train",
)
OTHERS = 0  # stored value of "others": ignored, as 255


def _colour(i: int) -> tuple[int, int, int]:
    """The PASCAL VOC colour map: distinct colours from the bits of the index (overlays only)."""
    r = g = b = 0
    for shift in range(8):
        r |= ((i >> 0) & 1) << (7 - shift)
        g |= ((i >> 1) & 1) << (7 - shift)
        b |= ((i >> 2) & 1) << (7 - shift)
        i >>= 3
    return r, g, b


@functools.cache
def label_table() -> LabelTable:
    return LabelTable(
        classes=CLASSES,
        palette=tuple(_colour(v) for v in range(1, len(CLASSES) + 1)),
        lut=make_lut({v: v - 1 for v in range(1, len(CLASSES) + 1)}),
        values=frozenset(range(len(CLASSES) + 1)) | {IGNORE},
    )


def video_names(root: Path, split: str) -> list[str]:
    listing = root / f"{split}.txt"
    if not listing.is_file():
        raise EtcError(f"missing file {listing} (the video list of split '{split}' of VSPW at {root})")
    return [line.strip() for line in listing.read_text().splitlines() if line.strip()]


def list_clips(root: Path, split: str, strict: bool = True) -> list[Clip]:
    """One clip per video of ``{split}.txt``, every frame with its mask.

    A listed video that is missing is an error either way; ``strict`` (check-data) also makes a
    frame without its mask one (otherwise that frame is unlabelled).
    """
    root = Path(root)
    clips = []
    for video in video_names(root, split):
        origin, masks = root / "data" / video / "origin", root / "data" / video / "mask"
        if not origin.is_dir():
            raise EtcError(f"video {video} listed in {root / f'{split}.txt'} is missing: no folder {origin}")
        frames = []
        for pos, image in enumerate(sorted(origin.glob("*.jpg"))):
            mask = masks / f"{image.stem}.png"
            if not mask.is_file():
                if strict:
                    raise EtcError(f"frame {image} has no mask: missing label map {mask}")
                mask = None
            number = int(image.stem) if image.stem.isdigit() else pos
            frames.append(Frame(number, image, mask, mask))
        if not frames:
            raise EtcError(f"video {video} has no frames: no *.jpg in {origin}")
        clips.append(Clip(video, split, tuple(frames)))
    return clips


HOW_TO_GET = (
    "VSPW: request the 480p release (VSPW_480p) through the VSPW site "
    "(https://www.vspwdataset.com, download script at github.com/sssdddwww2/vspw_dataset_download) "
    "and unzip it into ROOT, giving ROOT/{train,val,test}.txt (one video name a line), "
    "ROOT/data/<video>/origin/<frame>.jpg and ROOT/data/<video>/mask/<frame>.png"
)

SPEC = DatasetSpec(
    name="vspw",
    frame_size=(480, 853),
    list_clips=list_clips,
    labels=label_table,
    how_to_get=HOW_TO_GET,
    frame_naming=("data/<video>/origin/<frame>.jpg with data/<video>/mask/<frame>.png; one clip "
                  "per video of <split>.txt, frames in file-name order, every frame labelled"),
    label_convention=("mask palette indices: 0 = others and 255 ignored, 1..124 = the classes, "
                      "train id = value − 1 (reduce_zero_label, as VSPW's VC_perclip.py and the "
                      "CFFM/MRCFA configs)"),
    every_frame_labelled=True,
)
