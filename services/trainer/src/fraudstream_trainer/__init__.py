import os

# OpenMP threads that wait for work sleep rather than spin (the GNU runtime's default is to
# spin): the trainer shares its cores with the stream services, and spinning threads made its
# fits two to three times slower (benchmarks/trainer_threads.py). Read once, when XGBoost loads
# the runtime: set before any module of the trainer imports it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
