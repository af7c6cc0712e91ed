"""Tasks, one module per family (images, graphs, text); each registers with @register_task."""
