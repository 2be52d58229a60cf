"""The mapping search (dlp/mapping.py) against closed forms on small layers, and against the kernel's plan."""

from __future__ import annotations

import pytest

from stylize.dlp import mapping as M, spec as specs

ONE = specs.from_dict(dict(name="one", cores=1, clock_ghz=1, nram_kb=64, wram_kb=64, dram_gbps=1, dma_setup_ns=0,
                           mac_per_cycle=dict(fp32=1, fp16=2, int8=4), vector_per_cycle=dict(fp32=1, fp16=2, int8=2)))
L = M.ConvLayer(c=8, k=6, h=8, w=8)
HALO_2x2 = 8 * (8 + 2 * 2) * (8 + 2 * 2) * 4  # the input with the halos of 2 x 2 spatial tiles, fp32
WEIGHTS = 6 * 8 * 9 * 4
OUT = 6 * 8 * 8 * 4


@pytest.mark.parametrize("order, cb, kb, expected", [
    # K outside P, one Cin block: weight-stationary; the input is read once per K block (2), weights once.
    ("KPC", 8, 3, (2 * HALO_2x2, WEIGHTS, OUT)),
    # P outside K: input-stationary; weights read once per spatial tile (4), input once.
    ("PKC", 8, 3, (HALO_2x2, 4 * WEIGHTS, OUT)),
    # C outermost with 2 Cin blocks: every output tile is visited twice, its partial sums go out and back in;
    # the input tile stays while K turns inside P, the weights are read once per spatial tile.
    ("CPK", 4, 3, (HALO_2x2, 4 * WEIGHTS, OUT + 6 * 8 * 8 * 2 * 4)),
    # C innermost with 2 blocks and K outside P: input read per K block, weights per spatial tile.
    ("KPC", 4, 3, (2 * HALO_2x2, 4 * WEIGHTS, OUT)),
])
def test_traffic_closed_forms(order, cb, kb, expected):
    t = M.traffic(L, M.Mapping(order, 4, 4, cb, kb), ONE)
    assert (t.input, t.weights, t.output) == expected and t.sram == 0


def test_everything_on_chip_reaches_the_compulsory_traffic():
    m, t = M.search(L, ONE)
    padded = 8 * 10 * 10 * 4  # one spatial tile: the zero-padded input, once
    assert (t.input, t.weights, t.output) == (padded, WEIGHTS, OUT)
    assert (m.th, m.tw, m.cb, m.kb) == (8, 8, 8, 6)


def test_search_never_loses_to_the_kernels_plan_and_fixes_the_textbook_re_reads():
    tb = specs.load("textbook")
    layer = M.ConvLayer(512, 512, 32, 32)
    before = M.current(layer, tb)
    t0 = M.traffic(layer, before, tb, use_sram=False)
    halo = 512 * (32 + 2 * -(-32 // before.th)) * (32 + 2 * -(-32 // before.tw)) * 4
    assert before.kb == 7 and t0.input == 74 * halo  # the review's 74 output-channel blocks, each re-reading the input
    m, t = M.search(layer, tb)
    assert t.dram < t0.dram / 5 and t.time_s <= t0.time_s  # compute-bound either way at 32 x 32
    for spec in (tb, specs.load("mlu270")):
        for lay in (M.ConvLayer(3, 64, 64, 64), M.ConvLayer(64, 128, 32, 32), M.ConvLayer(256, 256, 16, 16)):
            assert M.search(lay, spec)[1].dram <= M.traffic(lay, M.current(lay, spec), spec, use_sram=False).dram


def test_shared_sram_divides_weight_reads_by_the_cluster_size():
    ml = specs.load("mlu270")
    assert ml.nram_bytes == (512 - 128) * 1024 and ml.sram_bytes == (2048 - 128) * 1024  # cncc's reservations
    layer = M.ConvLayer(64, 64, 64, 64)
    m = M.Mapping("PKC", 4, 64, 64, 64)  # 16 spatial tiles, one per core; weights fit SRAM
    with_sram, without = M.traffic(layer, m, ml), M.traffic(layer, m, ml, use_sram=False)
    once = 64 * 64 * 9 * 4
    assert without.weights == 16 * once and with_sram.weights == 4 * once  # 16 cores vs 4 clusters
    assert with_sram.sram == 16 * once and with_sram.sram_s == pytest.approx(16 * once / (256e9 * 4))


def test_time_is_the_roofline_plus_launch():
    t = M.traffic(L, M.Mapping("KPC", 4, 4, 8, 3), specs.load("textbook"))
    compute = 6 * 8 * 9 * 64 / 256e9
    dmas = 2 * 4 * 1 + 1 * 2 * 1 + 4 * 2 * 1  # input tiles, weight blocks, output stores
    dma = (t.input + t.weights + t.output) / 64e9 + dmas * 100e-9
    assert t.dmas == dmas and t.time_s == pytest.approx(max(compute, dma) + 2e-6)
