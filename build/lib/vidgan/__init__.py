"""vidgan: photos, video files and live video restyled as Van Gogh paintings."""

__version__ = "0.1.0"
