"""The engine: a convergent recurrent network of stochastic neurons and how it relaxes.

- ``network.py``: layers, symmetric interactions and the energy's parts (eq. 3-6);
- ``interactions/``: one class per kind of connection (dense, conv + pool, Hopfield attention);
- ``neurons/``: what a unit does with its drive (eq. 1, 2, 21);
- ``dynamics.py``: one step and a phase of eq. 7-8 (free or nudged);
- ``costs.py``: the output cost the nudge descends (eq. 8);
- ``rng.py``: the explicit, checkpointable spike stream;
- ``calibrate.py``: bias calibration of the firing rates at init;
- ``faults.py``: device faults (dead and stuck neurons, dropped spikes, weight variation);
- ``quantize.py``: fixed-point rounding and N-bit state grids.

Nothing here knows about learning rules, configs or training loops.
"""
