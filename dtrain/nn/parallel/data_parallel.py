__all__ = ["DataParallel"]


class DataParallel:
    pass
