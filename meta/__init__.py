"""Tasks and what is learnt across them. So far: the data sets a task is drawn from (`meta.datasets`)."""
