"""ASV: fastvar.Moments.update against NumPy's mean + var on the same array."""
import numpy as np

from fastvar import Moments


class MomentsUpdate:
    params = [10_000, 1_000_000, 10_000_000]
    param_names = ["values"]

    def setup(self, n):
        self.x = np.random.default_rng(0).standard_normal(n)
        Moments().update(self.x[:10])  # compile / load the cached kernel outside the timing

    def time_moments_update(self, n):
        Moments().update(self.x)

    def time_numpy_mean_var(self, n):
        np.mean(self.x)
        np.var(self.x)

    def track_speed_ratio_vs_numpy(self, n):
        """(NumPy mean + var time) / (Moments.update time): > 0.5 is the target."""
        import timeit

        numpy_s = min(timeit.repeat(lambda: (np.mean(self.x), np.var(self.x)), number=1, repeat=7))
        ours_s = min(timeit.repeat(lambda: Moments().update(self.x), number=1, repeat=7))
        return numpy_s / ours_s

    track_speed_ratio_vs_numpy.unit = "ratio"
