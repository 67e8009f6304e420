"""Work-arounds for stable-diffusion-cpp-python 0.4.7 binding traps.

Owns ``reset_callbacks()``: the binding registers progress/preview callbacks
in stable-diffusion.cpp's global C state, but the ctypes function objects it
passes are locals of ``generate_image`` / ``generate_video`` / ``upscale``
and are garbage-collected when those return. The C side keeps the dangling
pointers, so the next generation without a callback, or the next model load
(which also reports progress), jumps into freed memory and segfaults.
Call ``reset_callbacks()`` after every such call (a ``finally`` block) and
before loading a model.
"""

from __future__ import annotations

__all__ = ["reset_callbacks"]

# sd.cpp enum preview_t: PREVIEW_NONE = 0.
_PREVIEW_NONE = 0


def reset_callbacks() -> None:
    """Point sd.cpp's global progress and preview callbacks back to NULL."""
    # Imported lazily so modules using this helper import without the native library.
    import stable_diffusion_cpp.stable_diffusion_cpp as sd_cpp

    # argtypes are c_void_p, so None is passed as a NULL pointer.
    sd_cpp.sd_set_progress_callback(None, None)
    # Also restores the C defaults: mode none, interval 1, denoised previews, no noisy ones.
    sd_cpp.sd_set_preview_callback(None, _PREVIEW_NONE, 1, True, False, None)
