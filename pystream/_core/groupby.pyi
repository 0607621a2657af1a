import numpy as np
import numpy.typing as npt

def sum_by_key_i64(
    keys: npt.NDArray[np.int64], values: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64] | npt.NDArray[np.object_]]: ...
def sum_by_key_f64(
    keys: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
