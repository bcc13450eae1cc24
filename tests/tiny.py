"""The tiny recipe that tests, benchmarks and scripts train on, in one place.

N 32 patches of a 64 px grid-lines object, one image per split: a dataset builds in well under
a second and an epoch of a small generator takes a fraction of one on a CPU. Each study adds
its own scan strides, ``set_phi``, width, epochs and seeds; these lines are what they share.
Benchmarks and scripts import this too (they put the repository on sys.path).
"""

# [data] lines: the simulated object and patch size.
TINY_DATA = """\
N = 32
object_size = 64
n_lines = 30
nimgs_train = 1
nimgs_test = 1"""

# [defaults] lines: a two-block generator with few Fourier modes (the width varies).
TINY_GENERATOR = """\
fno_blocks = 2
fno_modes = 4"""
