"""Swabian adapter against the documented TimeTagger API, mocked with pytest-mock (the library is not installed)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from drivers.tagger.swabian import SwabianTagger, load_library
from qkdctl.core.errors import InstrumentError, QkdInputError


def make_buffer(mocker, t, ch, kind, missed, overflows=False):
    buf = mocker.Mock(spec=["getTimestamps", "getChannels", "getEventTypes", "getMissedEvents", "hasOverflows", "size"])
    buf.getTimestamps.return_value = np.array(t, dtype=np.int64)
    buf.getChannels.return_value = np.array(ch, dtype=np.int32)
    buf.getEventTypes.return_value = np.array(kind, dtype=np.uint8)
    buf.getMissedEvents.return_value = np.array(missed, dtype=np.uint16)
    buf.hasOverflows = overflows
    buf.size = len(t)
    return buf


@pytest.fixture
def tt(mocker):
    """A fake `Swabian.TimeTagger` module installed in sys.modules."""
    module = types.ModuleType("Swabian.TimeTagger")
    module.createTimeTagger = mocker.Mock(name="createTimeTagger")
    module.freeTimeTagger = mocker.Mock(name="freeTimeTagger")
    module.TimeTagStream = mocker.Mock(name="TimeTagStream")
    module.Countrate = mocker.Mock(name="Countrate")
    package = types.ModuleType("Swabian")
    package.TimeTagger = module
    mocker.patch.dict(sys.modules, {"Swabian": package, "Swabian.TimeTagger": module})
    return module


def test_missing_library_is_a_clear_instrument_error(mocker):
    mocker.patch.dict(sys.modules, {"Swabian": None, "Swabian.TimeTagger": None, "TimeTagger": None})
    with pytest.raises(InstrumentError, match="Swabian Time Tagger library not installed"):
        load_library()
    with pytest.raises(InstrumentError, match="not installed"):
        SwabianTagger("1234", channels=[1, 2])


def test_old_style_import_is_used(mocker):
    legacy = types.ModuleType("TimeTagger")
    mocker.patch.dict(sys.modules, {"Swabian": None, "Swabian.TimeTagger": None, "TimeTagger": legacy})
    assert load_library() is legacy


def test_configuration_calls(tt):
    with SwabianTagger("1910000ABC", channels=[1, 2, 3, 4]) as tagger:
        device = tt.createTimeTagger.return_value
        tt.createTimeTagger.assert_called_once_with("1910000ABC")
        tagger.configure(2, trigger_level_v=0.08, input_delay_ps=-1200, dead_time_ps=4000)
        device.setTriggerLevel.assert_called_once_with(2, 0.08)
        device.setInputDelay.assert_called_once_with(2, -1200)
        device.setDeadtime.assert_called_once_with(2, 4000)
        with pytest.raises(QkdInputError, match=r"channel 5 not in \[1, 2, 3, 4\]"):
            tagger.set_trigger_level_v(5, 0.1)
    tt.freeTimeTagger.assert_called_once_with(device)
    with pytest.raises(InstrumentError, match="tagger is closed"):
        tagger.set_dead_time_ps(1, 100)


def test_read_block_maps_events_overflow_and_missed(tt, mocker):
    stream = tt.TimeTagStream.return_value
    stream.waitUntilFinished.return_value = True
    stream.getData.return_value = make_buffer(
        mocker,
        t=[1000, 1500, 2000, 2600, 2600, 3000],
        ch=[1, 2, 0, 0, 0, 3],
        kind=[0, 2, 4, 4, 3, 0],
        missed=[0, 0, 65535, 12, 0, 0],
        overflows=True,
    )
    tagger = SwabianTagger(channels=[1, 2, 3], n_max_events=100)
    block = tagger.read_block(0.002)
    tt.TimeTagStream.assert_called_once_with(tt.createTimeTagger.return_value, 100, [1, 2, 3])
    stream.startFor.assert_called_once_with(2_000_000_000)
    assert block.t_ps.tolist() == [1000, 3000] and block.channel.tolist() == [1, 3]
    assert block.overflow and block.missed_events == 65547
    assert block.start_ps == 1000 and block.stop_ps == 1000 + 2_000_000_000


def test_clean_block_and_full_buffer(tt, mocker):
    stream = tt.TimeTagStream.return_value
    stream.waitUntilFinished.return_value = True
    stream.getData.return_value = make_buffer(mocker, [5, 7], [1, 2], [0, 0], [0, 0])
    assert not SwabianTagger(channels=[1, 2], n_max_events=3).read_block(1e-3).overflow
    full = SwabianTagger(channels=[1, 2], n_max_events=2).read_block(1e-3)
    assert full.overflow and full.meta["buffer_full"] and full.missed_events == 0


def test_unfinished_stream_and_library_errors(tt):
    stream = tt.TimeTagStream.return_value
    stream.waitUntilFinished.return_value = False
    tagger = SwabianTagger(channels=[1])
    with pytest.raises(InstrumentError, match="TimeTagStream did not finish within 5001 ms"):
        tagger.read_block(1e-3)
    stream.stop.assert_called_once()
    tagger._tagger.setTriggerLevel.side_effect = RuntimeError("level out of range")
    with pytest.raises(InstrumentError, match=r"setTriggerLevel\(1, 9.0\) failed: level out of range"):
        tagger.set_trigger_level_v(1, 9.0)


def test_count_rates(tt):
    rate = tt.Countrate.return_value
    rate.waitUntilFinished.return_value = True
    rate.getData.return_value = np.array([1200.0, 35.5])
    assert SwabianTagger(channels=[1, -2]).count_rates_hz() == {1: 1200.0, -2: 35.5}
    rate.startFor.assert_called_once_with(100_000_000_000)


def test_no_device_found(tt):
    tt.createTimeTagger.return_value = None
    with pytest.raises(InstrumentError, match="found no device"):
        SwabianTagger(channels=[1])
    tt.createTimeTagger.side_effect = RuntimeError("No time tagger found")
    with pytest.raises(InstrumentError, match="createTimeTagger\\(''\\) failed: No time tagger found"):
        SwabianTagger(channels=[1])
