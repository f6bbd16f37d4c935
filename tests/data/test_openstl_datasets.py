"""The benchmark datasets read from files in OpenSTL's layout: tiny files written here in each exact format."""

from __future__ import annotations

import gzip
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stzoo.data import make_dataset
from stzoo.data.kth20 import KTHFrames
from stzoo.data.openstl_files import OpenSTLMovingDigits, scan_starts
from stzoo.data.registry import get_dataset
from stzoo.errors import InputError


def _idx_gz(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def _digits(n: int = 6, seed: int = 0) -> np.ndarray:
    d = np.zeros((n, 28, 28), np.uint8)
    d[:, 6:22, 10:18] = np.random.default_rng(seed).integers(50, 255, (n, 1, 1))
    return d


# ---- Moving MNIST variants --------------------------------------------------------------------------


def test_canonical_file_is_read_time_major_from_root_or_own_folder(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 5, 64, 64), dtype=np.uint8)
    (tmp_path / "moving_mnist").mkdir()
    np.save(tmp_path / "moving_mnist" / "mnist_test_seq.npy", arr)
    for root in (tmp_path, tmp_path / "moving_mnist"):
        test = make_dataset("mmnist_canonical", "test", data_dir=root)
        assert len(test) == 5
        assert np.array_equal(test.sequence(3), arr[:, 3][:, None])
        b = test.batch(1, 4)
        assert b.shape == (3, 20, 1, 64, 64) and b.dtype == torch.uint8
    assert len(get_dataset("mmnist_canonical").test_data(2, {"data_dir": tmp_path})) == 2


def test_canonical_missing_dir_and_file_and_wrong_scale_are_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("STZOO_DATA_DIR", raising=False)
    with pytest.raises(InputError, match="--data-dir"):
        make_dataset("mmnist_canonical", "test")
    with pytest.raises(InputError, match="mnist_test_seq.npy"):
        make_dataset("mmnist_canonical", "test", data_dir=tmp_path)
    np.save(tmp_path / "mnist_test_seq.npy", np.random.default_rng(0).random((20, 3, 64, 64)).astype(np.float32))
    with pytest.raises(InputError, match="0..255"):
        make_dataset("mmnist_canonical", "test", data_dir=tmp_path)


def test_float_test_file_of_levels_is_served_as_uint8(tmp_path):
    # OpenSTL's generate_mmnist.py writes grey variants as float32 levels 0..255
    arr = np.random.default_rng(1).integers(0, 256, (20, 2, 64, 64)).astype(np.float32)
    (tmp_path / "moving_fmnist").mkdir()
    np.save(tmp_path / "moving_fmnist" / "fmnist_test_seq.npy", arr)
    seq = make_dataset("mfmnist", "test", data_dir=tmp_path).sequence(1)
    assert seq.dtype == np.uint8 and np.array_equal(seq[:, 0], arr[:, 1].astype(np.uint8))


def test_mfmnist_training_follows_openstl_generator_and_is_seeded(tmp_path):
    _idx_gz(tmp_path / "moving_fmnist" / "train-images-idx3-ubyte.gz", _digits())
    train = make_dataset("mfmnist", "train", data_dir=tmp_path, num_sequences=4, seq_len=20, seed=3)
    a = train.sequence(2)
    assert a.shape == (20, 1, 64, 64) and a.dtype == np.uint8
    assert np.array_equal(a, make_dataset("mfmnist", "train", data_dir=tmp_path, num_sequences=4, seed=3).sequence(2))
    train.set_epoch(1)
    assert not np.array_equal(a, train.sequence(2))
    assert a.max() > 0  # digits were drawn


def test_openstl_trajectory_clamps_at_the_border():
    gen = OpenSTLMovingDigits(_digits(), num_sequences=50, seq_len=40, seed=0)
    for i in range(50):
        seq = gen.sequence(i)[:, 0]
        assert seq.shape == (40, 64, 64)
        # every digit stays fully on the canvas: the block of each digit keeps its 16×8 size
        assert all(np.count_nonzero(f) > 0 for f in seq)


def test_mmnist_cifar_test_and_training(tmp_path):
    arr = np.random.default_rng(2).integers(0, 256, (20, 3, 64, 64, 3), dtype=np.uint8)
    mm = tmp_path / "moving_mnist"
    mm.mkdir()
    np.save(mm / "mnist_cifar_test_seq.npy", arr)
    test = make_dataset("mmnist_cifar", "test", data_dir=tmp_path)
    assert np.array_equal(test.sequence(2), arr[:, 2].transpose(0, 3, 1, 2))
    _idx_gz(mm / "train-images-idx3-ubyte.gz", _digits())
    cifar = mm / "cifar10" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for i, n in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = np.full((2, 3 * 32 * 32), 10 * i + 5, np.uint8)
        with open(cifar / n, "wb") as f:
            pickle.dump({"data": data, "labels": [0, 1]}, f)
    seq = make_dataset("mmnist_cifar", "train", data_dir=tmp_path, num_sequences=2, seed=0).sequence(0)
    assert seq.shape == (20, 3, 64, 64)
    values = set(np.unique(seq).tolist())
    assert 255 in values and len(values) == 2  # a flat background and binarised digits


# ---- TaxiBJ -----------------------------------------------------------------------------------------


def _taxibj(tmp_path: Path, lo: float = -1.0, hi: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    arrays = {
        k: rng.uniform(lo, hi, (n, 4, 2, 32, 32)).astype(np.float32)
        for k, n in (("X_train", 6), ("Y_train", 6), ("X_test", 3), ("Y_test", 3))
    }
    (tmp_path / "taxibj").mkdir(exist_ok=True)
    np.savez(tmp_path / "taxibj" / "dataset.npz", **arrays)
    return arrays


def test_taxibj_sequences_are_x_then_y_scaled_as_openstl(tmp_path):
    arrays = _taxibj(tmp_path)
    test = make_dataset("taxibj", "test", data_dir=tmp_path)
    assert len(test) == 3
    seq = test.sequence(1)
    assert seq.shape == (8, 2, 32, 32) and seq.dtype == np.float32
    # normalisation round trip: (x + 1) / 2 back to the file's [-1, 1] values
    back = seq * 2 - 1
    assert np.allclose(back[:4], arrays["X_test"][1], atol=1e-6) and np.allclose(
        back[4:], arrays["Y_test"][1], atol=1e-6
    )
    assert test.mean == 0.0 and test.std == 1.0
    train = make_dataset("taxibj", "train", data_dir=tmp_path, num_sequences=6, seq_len=8, seed=1)
    assert sorted(round(float(train.sequence(i)[0, 0, 0, 0]), 5) for i in range(6)) == sorted(
        round(float((arrays["X_train"][i, 0, 0, 0, 0] + 1) / 2), 5) for i in range(6)
    )


def test_taxibj_unscaled_file_is_refused(tmp_path):
    _taxibj(tmp_path, 0.0, 1200.0)
    with pytest.raises(InputError, match=r"\[-1, 1\]"):
        make_dataset("taxibj", "test", data_dir=tmp_path)


# ---- KTH --------------------------------------------------------------------------------------------


def _kth_frames(folder: Path, count: int, value_of=lambda k: k) -> None:
    folder.mkdir(parents=True)
    for k in range(1, count + 1):
        rgb = np.zeros((120, 160, 3), np.uint8)
        rgb[..., 0] = value_of(k)
        rgb[..., 1] = 255  # OpenSTL keeps channel 0 only
        Image.fromarray(rgb).save(folder / f"image_{k:04d}.png")


def test_kth_person_split_windows_and_scaling(tmp_path):
    kth = tmp_path / "kth"
    _kth_frames(kth / "boxing" / "person17_boxing_d1_uncomp", 35)
    _kth_frames(kth / "jogging" / "person18_jogging_d1_uncomp", 36)
    _kth_frames(kth / "boxing" / "person01_boxing_d1_uncomp", 31)
    frames = KTHFrames(kth, ("17", "18"))
    # boxing: windows do not overlap (35 frames: one window, the last 30); jogging: a window every 3 frames
    starts = frames.starts(30)
    assert [frames.refs[s][0].parent.name[:8] for s in starts] == ["person18"] * 3 + ["person17"]
    assert [frames.numbers[s] for s in starts] == [7, 4, 1, 6]
    test = make_dataset("kth20", "test", data_dir=tmp_path)
    assert len(test) == 4
    seq = test.sequence(3)  # person17, frames 6..35
    assert seq.shape == (30, 1, 128, 128) and seq.dtype == np.float32
    assert np.allclose(seq[:, 0, 64, 64], np.arange(6, 36) / 255.0, atol=1e-6)
    train = make_dataset("kth20", "train", data_dir=tmp_path, num_sequences=1, seq_len=30, seed=0)
    assert len(train) == 1 and np.allclose(train.sequence(0)[0, 0, 0, 0], 2 / 255.0)


def test_kth_reads_avi_videos_with_kth_naming(tmp_path):
    av = pytest.importorskip("av")
    folder = tmp_path / "walking"
    folder.mkdir()
    with av.open(str(folder / "person20_walking_d2_uncomp.avi"), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuvj420p"
        for k in range(32):
            img = np.full((120, 160, 3), 4 * k, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    test = make_dataset("kth20", "test", data_dir=tmp_path)
    assert len(test) == 1
    seq = test.sequence(0)
    assert seq.shape == (30, 1, 128, 128)
    assert abs(float(seq[-1, 0, 64, 64]) - 4 * 31 / 255.0) < 0.03  # lossy codec: near the frame's level


def test_kth_without_pyav_says_which_extra(tmp_path, monkeypatch):
    (tmp_path / "walking").mkdir()
    (tmp_path / "walking" / "person20_walking_d2_uncomp.avi").write_bytes(b"not a video")
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(InputError, match=r"\.\[video\]"):
        make_dataset("kth20", "test", data_dir=tmp_path)


# ---- Human3.6M --------------------------------------------------------------------------------------


def test_human_list_every_fifth_frame_in_bgr(tmp_path):
    images = tmp_path / "human" / "images"
    images.mkdir(parents=True)
    for j in range(1, 42):
        rgb = np.zeros((256, 256, 3), np.uint8)
        rgb[...] = (200, 100, j)  # R, G and a B that names the frame
        Image.fromarray(rgb).save(images / f"S9_Walking.55011271_{j:06d}.jpg", quality=100)
    (tmp_path / "human" / "test.txt").write_text("images/S9_Walking.55011271_,1,41\nimages/S9_Walking.55011271_,2,42\n")
    test = make_dataset("human", "test", data_dir=tmp_path)
    assert len(test) == 2
    seq = test.sequence(0)
    assert seq.shape == (8, 3, 256, 256)
    assert np.allclose(seq[:, 0, 10, 10] * 255, [1, 6, 11, 16, 21, 26, 31, 36], atol=2)  # channel 0 = blue
    assert np.allclose(seq[:, 2, 10, 10] * 255, 200, atol=2)  # channel 2 = red
    rgb = make_dataset("human", "test", data_dir=tmp_path, channel_order="rgb").sequence(0)
    assert np.allclose(rgb[:, 0], seq[:, 2])


# ---- KittiCaltech -----------------------------------------------------------------------------------


def test_kitti_hkl_training_and_caltech_cache_test(tmp_path):
    hickle = pytest.importorskip("hickle")
    kitti = tmp_path / "kitti_hkl"
    kitti.mkdir()
    frames = np.zeros((25, 128, 160, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(25)
    hickle.dump(frames, str(kitti / "X_train.hkl"))
    hickle.dump(["a"] * 12 + ["b"] * 13, str(kitti / "sources_train.hkl"))
    train = make_dataset("kitticaltech", "train", data_dir=tmp_path, num_sequences=10, seq_len=11, seed=0)
    firsts = sorted(int(train.sequence(i)[0, 0, 0, 0]) for i in range(len(train)))
    assert firsts == [1, 14]  # one window per recording, none across the two
    caltech = tmp_path / "caltech"
    caltech.mkdir()
    cache = np.random.default_rng(4).integers(0, 256, (30, 128, 160, 3), dtype=np.uint8)
    np.save(caltech / "data_cache.npy", cache)
    np.save(caltech / "indices_cache.npy", np.array([19, 8], np.int32))
    test = make_dataset("kitticaltech", "test", data_dir=tmp_path)
    assert len(test) == 2
    assert np.array_equal(test.sequence(1), cache[8:19].transpose(0, 3, 1, 2))


def test_kitti_without_hickle_says_which_extra(tmp_path, monkeypatch):
    (tmp_path / "kitti_hkl").mkdir()
    monkeypatch.setitem(sys.modules, "hickle", None)
    with pytest.raises(InputError, match=r"\.\[kitti\]"):
        make_dataset("kitticaltech", "train", data_dir=tmp_path)


def test_scan_starts_matches_openstl_backward_scan():
    groups = ["a"] * 5 + ["b"] * 7
    assert scan_starts(groups, 3) == [9, 6, 2]
    assert scan_starts(groups, 3, stride=1) == [9, 7, 5, 2, 0]


# ---- WeatherBench -----------------------------------------------------------------------------------


def _weather_files(root: Path, long_name: str, var: str, levels: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    xr = pytest.importorskip("xarray")
    pytest.importorskip("netCDF4")
    import pandas as pd

    folder = root / "weather_5_625deg" / long_name
    folder.mkdir(parents=True)
    lat = np.linspace(-87.1875, 87.1875, 32)
    lon = np.arange(64) * 5.625
    rng = np.random.default_rng(seed)
    raw = {}
    for year in (2010, 2014, 2015, 2017, 2018):
        time = pd.date_range(f"{year}-01-01", periods=15, freq="20D")
        base = 280.0 + (year - 2010) + rng.normal(0, 3, (15, 32, 64)).astype(np.float32)
        values = np.stack([base - 5, base], axis=1) if levels else base
        dims = ("time", "level", "lat", "lon") if levels else ("time", "lat", "lon")
        coords = {"time": time, "lat": lat, "lon": lon} | ({"level": [850, 1000]} if levels else {})
        xr.Dataset({var: (dims, values)}, coords=coords).to_netcdf(folder / f"{long_name}_{year}_5.625deg.nc")
        raw[str(year)] = base
    return raw


def _years(raw: dict[str, np.ndarray], *years: str) -> np.ndarray:
    return np.concatenate([raw[y] for y in years])[:-1].astype(np.float64)  # the last step dropped


def test_weather_years_normalisation_and_windows(tmp_path):
    raw = _weather_files(tmp_path, "2m_temperature", "t2m")
    test = make_dataset("weather_t2m_5_625", "test", data_dir=tmp_path, seq_len=24)
    test_raw, train_raw = _years(raw, "2017", "2018"), _years(raw, "2010", "2014", "2015")
    assert len(test) == len(test_raw) - 24  # OpenSTL's valid_idx stops one step early
    assert np.allclose(test.mean, train_raw.mean()) and np.allclose(test.std, train_raw.std())
    # OpenSTL z-scores the test years with their own statistics (not the training ones)
    want = (test_raw[3:27] - test_raw.mean()) / test_raw.std()
    assert np.allclose(test.sequence(3)[:, 0], want, atol=1e-4)
    assert np.allclose(test.latitudes, np.linspace(-87.1875, 87.1875, 32))
    train = make_dataset("weather_t2m_5_625", "train", data_dir=tmp_path, num_sequences=2, seq_len=24, seed=0)
    seq = train.sequence(0)  # round trip: the training split maps back to kelvin exactly
    back = seq[:, 0] * train.std[0] + train.mean[0]
    assert any(np.allclose(back, train_raw[s : s + 24], atol=1e-3) for s in range(len(train_raw) - 23))


def test_weather_uv10_two_channels_and_r_last_level(tmp_path):
    u = _weather_files(tmp_path, "10m_u_component_of_wind", "u10", seed=1)
    v = _weather_files(tmp_path, "10m_v_component_of_wind", "v10", seed=2)
    test = make_dataset("weather_uv10_5_625", "test", data_dir=tmp_path, seq_len=24)
    seq = test.sequence(0)
    assert seq.shape == (24, 2, 32, 64)
    for c, raw in enumerate((u, v)):
        t = _years(raw, "2017", "2018")
        assert np.allclose(seq[:, c], ((t - t.mean()) / t.std())[:24], atol=1e-4)
    r = _weather_files(tmp_path, "relative_humidity", "r", levels=True, seed=3)
    rs = make_dataset("weather_r_5_625", "test", data_dir=tmp_path, seq_len=24).sequence(0)
    t = _years(r, "2017", "2018")
    assert np.allclose(rs[:, 0], ((t - t.mean()) / t.std())[:24], atol=1e-4)  # the last level: base, not base-5


def test_weather_without_xarray_says_which_extra(tmp_path, monkeypatch):
    (tmp_path / "weather_5_625deg" / "total_cloud_cover").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(InputError, match=r"\.\[weather\]"):
        make_dataset("weather_tcc_5_625", "test", data_dir=tmp_path)


def test_every_benchmark_dataset_shares_the_data_dir_option():
    from stzoo.data.registry import DATA_DIR_OPTION, list_datasets

    names = [n for n in list_datasets() if DATA_DIR_OPTION in get_dataset(n).options]
    assert set(names) >= {
        "mmnist_canonical",
        "mfmnist",
        "mmnist_cifar",
        "kth20",
        "human",
        "kitticaltech",
        "taxibj",
        "weather_t2m_5_625",
        "weather_r_5_625",
        "weather_uv10_5_625",
        "weather_tcc_5_625",
    }
    protocol = {n: (get_dataset(n).frames_in, get_dataset(n).frames_out) for n in names}
    assert protocol["kth20"] == (10, 20) and protocol["kitticaltech"] == (10, 1) and protocol["taxibj"] == (4, 4)
    assert protocol["human"] == (4, 4) and protocol["weather_t2m_5_625"] == (12, 12)


def test_caltech_videos_every_third_frame_resized_cropped_and_cached(tmp_path):
    av = pytest.importorskip("av")
    folder = tmp_path / "caltech" / "set06"
    folder.mkdir(parents=True)
    with av.open(str(folder / "V000.avi"), "w") as out:
        stream = out.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuvj420p"
        for k in range(36):
            img = np.zeros((240, 320, 3), np.uint8)
            img[..., 2] = 6 * k  # blue: a frame counter (read back as BGR: channel 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    test = make_dataset("kitticaltech", "test", data_dir=tmp_path)
    assert len(test) == 1  # 12 kept frames (every 3rd of 36): one window of 11
    seq = test.sequence(0)
    assert seq.shape == (11, 3, 128, 160) and seq.dtype == np.uint8
    # frames 3, 6, ... (1-based) are kept; the window is the last 11 of the 12: frames 6 .. 36
    assert np.allclose(seq[:, 0, 64, 80].astype(float), [6 * (k - 1) for k in range(6, 37, 3)], atol=6)
    assert (tmp_path / "caltech" / "data_cache.npy").is_file() and (
        tmp_path / "caltech" / "indices_cache.npy"
    ).is_file()
    again = make_dataset("kitticaltech", "test", data_dir=tmp_path)  # now from OpenSTL's cache files
    assert np.array_equal(again.sequence(0), seq)
