"""engine_ctypes.py: the C engine (build/libspkengine.so) through ctypes, for the engine tests.

The structs mirror engine/step.h; the library path comes from SPIKESERVE_BUILD (default build).
"""
import ctypes as C
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class Event(C.Structure):
    _fields_ = [("step", C.c_uint32), ("input", C.c_uint32), ("value", C.c_float)]


class Spike(C.Structure):
    _fields_ = [("step", C.c_uint32), ("neuron", C.c_uint32), ("value", C.c_float)]


class Input(C.Structure):
    _fields_ = [("steps", C.c_uint32), ("events", C.POINTER(Event)), ("n_events", C.c_size_t),
                ("dense", C.POINTER(C.c_float))]


class SpikeBuf(C.Structure):
    _fields_ = [("buf", C.POINTER(Spike)), ("cap", C.c_size_t), ("len", C.c_size_t)]


class Output(C.Structure):
    _fields_ = [("spikes", SpikeBuf), ("layers", C.POINTER(SpikeBuf)),
                ("readout", C.POINTER(C.c_float)), ("readout_every_step", C.c_int),
                ("nonzero", C.POINTER(C.c_uint64))]


def load_lib():
    build = os.environ.get("SPIKESERVE_BUILD", "build")
    if not os.path.isabs(build):
        build = os.path.join(ROOT, build)
    lib = C.CDLL(os.path.join(build, "libspkengine.so"))
    vp, sz, u32 = C.c_void_p, C.c_size_t, C.c_uint32
    lib.spk_model_load_bytes.argtypes = [C.c_char_p, sz, C.POINTER(vp), C.c_char_p, sz]
    lib.spk_model_free.argtypes = [vp]
    lib.spk_state_create.argtypes = [vp]
    lib.spk_state_create.restype = vp
    lib.spk_state_free.argtypes = [vp]
    for f in ("spk_state_i", "spk_state_h", "spk_state_hs"):
        getattr(lib, f).argtypes = [vp, u32]
        getattr(lib, f).restype = C.POINTER(C.c_float)
    lib.spk_state_o.argtypes = [vp]
    lib.spk_state_o.restype = C.POINTER(C.c_float)
    lib.spk_scratch_create.argtypes = [vp]
    lib.spk_scratch_create.restype = vp
    lib.spk_scratch_free.argtypes = [vp]
    lib.spk_step.argtypes = [vp, C.POINTER(Input), C.POINTER(Output), vp, C.c_char_p, sz]
    lib.spk_set_kernels.argtypes = [C.c_char_p]
    lib.spk_kernels_name.restype = C.c_char_p
    return lib


class Engine:
    """One model, one state and one scratch of the C engine."""

    def __init__(self, lib, model_bytes, widths, n_out):
        self.lib = lib
        self.m = C.c_void_p()
        err = C.create_string_buffer(512)
        rc = lib.spk_model_load_bytes(model_bytes, len(model_bytes), C.byref(self.m), err, 512)
        if rc != 0:
            raise RuntimeError("load: %d %s" % (rc, err.value.decode()))
        self.s = lib.spk_state_create(self.m)
        self.sc = lib.spk_scratch_create(self.m)
        self.widths, self.n_out = widths, n_out
        self.err = err
        view = lambda p, n: np.ctypeslib.as_array(p, shape=(n,))  # noqa: E731
        L = len(widths)
        self.i = [view(lib.spk_state_i(self.s, k), widths[k]) for k in range(L)]
        self.h = [view(lib.spk_state_h(self.s, k), widths[k]) for k in range(L)]
        self.hs = [view(lib.spk_state_hs(self.s, k), widths[k]) for k in range(L)]
        o = lib.spk_state_o(self.s)
        self.o = view(o, n_out) if n_out else None
        self.layer_bufs = (SpikeBuf * L)()
        self.nonzero = (C.c_uint64 * L)()
        self.cap = 0

    SPIKE_DT = np.dtype([("step", "<u4"), ("neuron", "<u4"), ("value", "<f4")])

    def step(self, steps, events=None, dense=None, readout_every_step=False):
        """Run one batch. Returns (per-layer spikes, last-layer spikes, readout), spikes as
        structured arrays (step, neuron, value); readout is steps x n_out when
        readout_every_step, else n_out values (None without a readout)."""
        L = len(self.widths)
        inp = Input(steps=steps)
        if events is not None and len(events):
            ev = np.zeros(len(events), dtype=self.SPIKE_DT)
            ev_arr = np.asarray(events, dtype=np.float64).reshape(-1, 3)
            ev["step"], ev["neuron"], ev["value"] = ev_arr[:, 0], ev_arr[:, 1], ev_arr[:, 2]
            inp.events = ev.ctypes.data_as(C.POINTER(Event))
            inp.n_events = len(events)
        if dense is not None:
            dense = np.ascontiguousarray(dense, dtype=np.float32)
            inp.dense = dense.ctypes.data_as(C.POINTER(C.c_float))
        need = max(self.widths) * steps
        if need > self.cap:
            self.cap = need
            self.bufs = [np.zeros(need, dtype=self.SPIKE_DT) for _ in range(L + 1)]
        out = Output()
        ptr = lambda a: a.ctypes.data_as(C.POINTER(Spike))  # noqa: E731
        out.spikes = SpikeBuf(ptr(self.bufs[L]), need, 0)
        for k in range(L):
            self.layer_bufs[k] = SpikeBuf(ptr(self.bufs[k]), need, 0)
        out.layers = self.layer_bufs
        out.nonzero = self.nonzero
        ro = None
        if self.n_out:
            ro = np.zeros((steps, self.n_out) if readout_every_step else self.n_out, np.float32)
            out.readout = ro.ctypes.data_as(C.POINTER(C.c_float))
            out.readout_every_step = int(readout_every_step)
        rc = self.lib.spk_step(self.s, C.byref(inp), C.byref(out), self.sc, self.err, 512)
        if rc != 0:
            raise RuntimeError("step: %d %s" % (rc, self.err.value.decode()))
        per_layer = [self.bufs[k][: self.layer_bufs[k].len].copy() for k in range(L)]
        return per_layer, self.bufs[L][: out.spikes.len].copy(), ro

    def close(self):
        self.lib.spk_scratch_free(self.sc)
        self.lib.spk_state_free(self.s)
        self.lib.spk_model_free(self.m)
