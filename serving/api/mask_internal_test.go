package api

import (
	"encoding/json"
	"testing"
)

func TestMaskJSONStrings(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, `{}`},
		{`[]`, `[]`},
		{`{"a":1}`, `{"a":1}`},
		{` { "id" : 255346903699423232 , "n" : [1, 2.50, -3e2], "ok": true, "x": null } `,
			`{"id":255346903699423232,"n":[1,2.50,-3e2],"ok":true,"x":null}`},
		{`{"payments":[{"transaction_id":255346903699428048,"merchant_name":"Pay 4111111111111111","amount":60.00},{"merchant_name":"B","location":"1 Main St"}],"total":1.5}`,
			`{"payments":[{"transaction_id":255346903699428048,"merchant_name":"Pay ************1111","amount":60.00},{"merchant_name":"B","location":"1 Main St"}],"total":1.5}`},
		{`{"nested":{"deep":{"s":"4111-1111-1111-1111"}},"after":[[],{}]}`,
			`{"nested":{"deep":{"s":"****-****-****-1111"}},"after":[[],{}]}`},
		{`"just 4111111111111111"`, `"just ************1111"`},
	} {
		got, err := maskJSONStrings(tc.in)
		if err != nil || string(got) != tc.want || !json.Valid(got) {
			t.Errorf("maskJSONStrings(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{`, `{"a":}`, `nope`, `{"a":1}}`} {
		if got, err := maskJSONStrings(bad); err == nil {
			t.Errorf("maskJSONStrings(%s) = %s, want an error", bad, got)
		}
	}
}
