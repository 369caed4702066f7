"""Virtual patients: seeded, pure models of the person an implant or a trial device treats.

A patient has an indication, a baseline (pain on the 0-10 NRS, disability on the ODI, analgesic
use in morphine milligram equivalents, spasticity on the Modified Ashworth Scale for baclofen), and
a response that depends only on what the device really delivers: for a stimulator the program's
coverage of the painful area and its amplitude against the patient's perception and discomfort
thresholds, for a pump each drug's daily dose and boluses with their onset and duration. Placebo,
day-to-day and within-day noise and a long-term course (loss of effect, opioid tolerance) ride on
top, and the patient writes a diary at device time.

Everything here is a pure function of a seed, a device time and what was delivered: no I/O, no
clock, no randomness that depends on how time was stepped, so the same seed gives the same diary
whether a device advances a week in one call or in ten thousand, and a patient's state is a small
JSON document a device can save with its own. The figures, their sources and their tags are in
``config.py`` and docs/patients.md.

Imports ``protocols.messages`` (programs, waveforms, drugs) and nothing else of the project, except
``cohort``, which programs within the pump model's published dose caps (``pump_config``); the
servers and the dashboard are never imported from here.
"""
