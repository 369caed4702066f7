"""SPEC.md's generated message tables match the message classes."""

from __future__ import annotations

import math

from protocols.codec import REGISTRY
from protocols.specgen import SPEC_PATH, spliced


def test_spec_tables_are_current():
    text = SPEC_PATH.read_text(encoding="utf-8")
    assert spliced(text) == text, "run `make vectors` to regenerate SPEC.md's tables"


def test_spec_names_every_message_type():
    text = SPEC_PATH.read_text(encoding="utf-8")
    for msg_type, cls in REGISTRY.items():
        assert f"### 0x{msg_type:02X} {cls.__name__}" in text


def _headings(text: str) -> set[str]:
    import re

    return set(re.findall(r"^#{2,4} (\d+(?:\.\d+)?)[. ]", text, flags=re.MULTILINE))


def test_every_section_reference_names_a_section_that_exists():
    """'section 3.5', 'see 4.1', '(3.7)': each number is a heading of SPEC.md."""
    import re

    text = SPEC_PATH.read_text(encoding="utf-8")
    headings = _headings(text)
    assert {"2.4", "3.5", "4.1", "6", "10"} <= headings
    pattern = r"(?:[Ss]ections? |[Ss]ee |SPEC )(\d+(?:\.\d+)?)|\((\d+\.\d+)\)"
    cited = {a or b for a, b in re.findall(pattern, text)}
    assert cited, "the pattern finds the document's references"
    assert sorted(cited - headings) == []


def test_the_device_limits_spec_states_are_the_emulator_defaults():
    """SPEC 4.4 quotes the ScsConfig and PumpConfig defaults; a changed default must change the text."""
    from device_mock.pump_config import PumpConfig
    from device_mock.stim_physics import ScsConfig, charge_density

    text = " ".join(SPEC_PATH.read_text(encoding="utf-8").split())
    scs, pump = ScsConfig(), PumpConfig()

    def span(low: int, high: int) -> str:
        return f"{low}–{high}"

    assert f"`program` 1–{scs.max_programs}; `areas` 1–{scs.max_areas}" in text
    assert f"`amplitude_ua` {span(*scs.amplitude_ua)} µA, at most {scs.area_cap_ua} µA per area" in text
    assert f"and {scs.contact_cap_ua} µA per contact" in text
    assert f"`pulse_width_us` {span(*scs.pulse_width_us)} µs" in text
    assert f"`rate_hz` {span(*scs.rate_hz)} Hz tonic, {span(*scs.hf_rate_hz)} Hz high frequency" in text
    assert f"`cycle_on_s` and `cycle_off_s` {span(*scs.cycle_s)} s" in text and f"1–{scs.ramp_s[1]} s" in text
    limit = f"{scs.charge_density_limit:g} µC/cm²/phase"
    assert f"An area above {limit} meets the device's density policy. `{scs.density_policy}`" in text
    assert f"above {limit}, and cleared" in text
    assert f"/ {scs.contact_area_cm2}` µC/cm²/phase" in text
    assert f"An area whose k reaches {scs.shannon_k_limit:g} is refused" in text
    # Where Shannon binds with the default contact: k = log(Q² / A) = limit.
    q = math.sqrt(10**scs.shannon_k_limit * scs.contact_area_cm2)
    assert f"k reaches {scs.shannon_k_limit:g} at {q / scs.contact_area_cm2:.1f} µC/cm²/phase (Q = {q:.2f}" in text
    smallest = 10**scs.shannon_k_limit / scs.charge_density_limit**2
    assert f"on contacts smaller than {smallest:.3f} cm²" in text
    assert f"needing more than {scs.compliance_mv} mV is refused" in text
    (_, fine), (coarse_from, coarse) = scs.amplitude_steps_ua
    assert f"steps of {fine} µA below {coarse_from} µA and of {coarse} µA from {coarse_from} µA" in text
    assert f"a multiple of {scs.pulse_width_step_us} µs and `rate_hz` of {scs.rate_step_hz} Hz" in text
    assert f"read below {scs.short_ohm} Ω (a" in text
    drift = f"+{scs.impedance_drift * 100:g} % with a {scs.impedance_drift_tau_days:g}-day time constant"
    assert drift in text and scs.impedance_drift_step_h == 24 and "moving once a day" in text
    assert f"at 1000 µs ({charge_density(6000, 1000, 1, scs.contact_area_cm2):.1f} µC/cm²/phase) raises it" in text
    assert f"at 300 µs ({charge_density(6000, 300, 1, scs.contact_area_cm2):.1f} µC/cm²/phase) does not" in text
    rates = span(pump.min_rate_ul_per_day, pump.max_rate_ul_per_day)
    assert f"every flex step's rate {rates} µL/day" in text
    assert f"`alarm_volume_ul` {pump.min_alarm_ul} µL to the smaller of {pump.max_alarm_ul} µL" in text
    assert f"`Bolus.volume_ul` 1–{pump.max_bolus_ul} µL" in text
    assert f"`patient_bolus.dose_ul` {span(pump.min_ptm_dose_ul, pump.max_ptm_dose_ul)} µL" in text
    assert f"`lockout_min` {span(pump.min_ptm_lockout_min, pump.max_ptm_lockout_min)}" in text
    assert f"`max_per_day` 1–{pump.max_ptm_per_day}" in text


def _vectors() -> dict:
    import json

    return json.loads((SPEC_PATH.parent / "vectors.json").read_text(encoding="utf-8"))


def test_the_schema_grammar_names_every_scalar_type_the_schema_text_uses():
    """Section 5's grammar lists each integer type that ``schema_text`` spells (i16 was missing once)."""
    import re

    text = SPEC_PATH.read_text(encoding="utf-8")
    grammar = set(re.findall(r'"([ui]\d+|bool)"', re.search(r"^type    = .*$", text, re.MULTILINE)[0]))
    used = set(re.findall(r"[:\s(]([ui]\d+)\b", _vectors()["schema_text"]))
    assert used and used <= grammar, f"schema text uses {sorted(used - grammar)} that section 5 does not list"


def test_timing_and_frame_sizes_in_sections_6_and_7_3_are_the_codecs_and_the_vectors():
    """The payload ranges come from the layouts, the frame sizes from vectors.json, the poll times by formula."""
    from protocols.fields import layout_of
    from protocols.messages import PumpStatus, ScsStatus

    text = SPEC_PATH.read_text(encoding="utf-8")
    vectors = _vectors()
    pump = next(m for m in vectors["messages"] if m["name"] == "PumpStatus")
    request = next(m for m in vectors["messages"] if m["name"] == "StatusRequest" and m["tag_hex"])
    scs = next(m for e in vectors["exchanges"] for m in e["messages"] if m["name"] == "ScsStatus")
    size = {name: len(bytes.fromhex(m[key])) for name, m in (("pump", pump), ("scs", scs)) for key in ["frame_hex"]}
    payload = {"pump": len(pump["payload_hex"]) // 2, "scs": len(scs["payload_hex"]) // 2}
    req = len(bytes.fromhex(request["frame_hex"]))
    overhead = size["pump"] - payload["pump"]  # header, tag, CRC, one COBS byte, two delimiters
    assert req == overhead == size["scs"] - payload["scs"] == 44
    lo = min(layout_of(c).min_size() for c in (ScsStatus, PumpStatus))
    hi = max(layout_of(c).max_size() for c in (ScsStatus, PumpStatus))
    body_hi = hi + overhead - 3
    reply_lo, reply_hi = lo + overhead, hi + overhead + math.ceil(body_hi / 254) - 1  # worst-case COBS

    def ms(reply: int, baud: int) -> float:
        return (req + reply) * 10 / baud * 1000

    section6 = " ".join(text[text.index("## 6. Timing") : text.index("## 7. Worked examples")].split())
    s, p = layout_of(ScsStatus), layout_of(PumpStatus)
    assert f"a status reply {reply_lo}–{reply_hi} bytes" in section6
    assert (
        f"ScsStatus payload {s.min_size()}–{s.max_size()} bytes, PumpStatus {p.min_size()}–{p.max_size()}" in section6
    )
    assert f"For the {size['pump']}-byte PumpStatus frame of section 7.3" in section6
    assert f"{req + size['pump']} × 10 / 115200 = **{ms(size['pump'], 115200):.1f} ms**" in section6
    assert f"({ms(size['pump'], 9600):.0f} ms at 9600)" in section6
    assert f"{ms(reply_lo, 115200):.1f}–{ms(reply_hi, 115200):.1f} ms at 115200 baud" in section6
    assert f"{ms(reply_lo, 9600):.0f}–{ms(reply_hi, 9600):.0f} ms at 9600" in section6
    section73 = " ".join(text[text.index("### 7.3") : text.index("### 7.4")].split())
    assert f"a {payload['pump']}-byte payload and a {size['pump']}-byte frame" in section73
    assert f"is {payload['scs']} and {size['scs']} bytes" in section73
