"""Planning a sweep before or during it: cost estimate, schedule replay, disk plan."""
