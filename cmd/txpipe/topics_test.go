package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/stream"
)

// TestDerivedTopicsAreValid: for the longest input topic name the
// configuration takes, every topic txpipe derives from it is one Kafka
// takes too. A new derived topic with a longer suffix fails here until
// config.TopicSuffixes names it.
func TestDerivedTopicsAreValid(t *testing.T) {
	longest := ""
	for n := 1; n <= 249; n++ {
		if name := strings.Repeat("t", n); config.CheckTopic(name) == nil {
			longest = name
		}
	}
	if longest == "" {
		t.Fatal("no topic name passes config.CheckTopic")
	}
	topics := reflect.ValueOf(stream.TopicsFor(longest))
	for i := range topics.NumField() {
		name := topics.Field(i).String()
		if len(name) > 249 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			t.Errorf("%s topic %q (%d characters) is not a name Kafka takes", topics.Type().Field(i).Name, name, len(name))
		}
	}
}
