"""The report end of the data flow: NAS-Bench-201 ground truth (`nb201_table`), comparisons of NAS methods from search
to retrained network to table (`compare`), rank statistics (`ranking`) and what a teacher bank says about its data
sets (`teacher_signal`). Nothing below this package imports it."""
