//go:build race

package basecluster

const raceEnabled = true
