"""The report end of the data flow: the evaluation loop (`accuracy`), NAS-Bench-201 ground truth (`nb201_table`) and
comparisons of NAS methods from search to retrained network to table (`compare`)."""
