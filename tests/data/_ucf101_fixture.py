"""A tiny generated UCF101 folder (videos or frame folders, split files, broken inputs) for tests."""
from __future__ import annotations

import numpy as np

CLASSES = ["ApplyEyeMakeup", "Biking", "Diving"]
H, W = 32, 40


def frame_value(video: int, frame: int) -> int:
    """Grey level of frame ``frame`` of video ``video`` (distinct per frame, far apart)."""
    return (40 + 9 * frame + 50 * video) % 250


def write_video(path, video: int, frames: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.bit_rate = 4_000_000
        for i in range(frames):
            image = np.full((H, W, 3), frame_value(video, i), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_frames(folder, video: int, frames: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(frames):
        image = np.full((H, W, 3), frame_value(video, i), np.uint8)
        image[0, 0] = (i, 255 - i, 7)  # one marked pixel: PNG keeps it exactly
        Image.fromarray(image).save(folder / f"{i + 1}.png")  # 1.png ... 20.png: natural order matters


def make_ucf101(root, as_frames: bool):
    """3 classes x (2 train + 1 test) videos of 12-20 frames, one corrupt video in the train list,
    and (frame folders) one test video with a corrupt frame."""
    train_lines, test_lines, lengths = [], [], {}
    video = 0
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for group, split in ((1, "test"), (2, "train"), (3, "train")):
            stem = f"v_{name}_g{group:02d}_c01"
            frames = 12 + 4 * ((video + label) % 3)
            if as_frames:
                write_frames(root / name / stem, video, frames)
            else:
                write_video(root / name / f"{stem}.avi", video, frames)
            lengths[f"{name}/{stem}.avi"] = (video, frames)
            (train_lines if split == "train" else test_lines).append(
                f"{name}/{stem}.avi {label + 1}" if split == "train" else f"{name}/{stem}.avi")
            video += 1
    (root / "Biking" / "v_Biking_g09_c01.avi").write_bytes(np.random.RandomState(1).bytes(4000))
    train_lines.append("Biking/v_Biking_g09_c01.avi 2")
    if as_frames:
        (root / "Diving" / "v_Diving_g01_c01" / "3.png").write_bytes(b"not a png")
    notes = root / "ucfTrainTestlist"
    notes.mkdir()
    (notes / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(CLASSES)))
    (notes / "trainlist01.txt").write_text("\n".join(train_lines) + "\n")
    (notes / "testlist01.txt").write_text("\n".join(test_lines) + "\n")
    return lengths
