package dataset

import "embed"

// Default is the repository's default dataset (the CSV files of this
// directory, made by Generate with DefaultOptions), carried in the binary
// so that it works from any directory.
//
//go:embed *.csv
var Default embed.FS
