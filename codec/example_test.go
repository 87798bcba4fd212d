package codec_test

import (
	"fmt"

	"github.com/herd-project/herd/codec"
)

func ExampleParseLine() {
	m, err := codec.ParseLine([]byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503"))
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Kind, string(m.Client), string(m.LatText), string(m.LngText), m.Time.Sec, m.Time.Nsec)

	w, _ := codec.ParseLine([]byte("WHATSAT kiwi.cs.ucla.edu 10 5"))
	fmt.Println(w.Kind, string(w.Radius), w.Bound, string(codec.AppendRadiusMetres(nil, w.Radius)))

	line := []byte("WHATSAT kiwi.cs.ucla.edu 51 5")
	_, err = codec.ParseLine(line)
	fmt.Println(err)
	fmt.Printf("%q\n", codec.AppendInvalid(nil, line))
	// Output:
	// IAMAT kiwi.cs.ucla.edu +34.068930 -118.445127 1621464827 959498503
	// WHATSAT 10 5 10000
	// codec: invalid command: radius must be at most 50 km
	// "? WHATSAT kiwi.cs.ucla.edu 51 5\n"
}

func ExampleAppendAT() {
	m, _ := codec.ParseLine([]byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503"))
	recv := codec.Time{Sec: 1621464828, Nsec: 223371889}
	fmt.Printf("%s", codec.AppendAT(nil, "Hill", recv, &m))
	fmt.Printf("%s\n", codec.AppendSkew(nil, codec.Time{Sec: 5}, codec.Time{Sec: 17, Nsec: 1}))
	// Output:
	// AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503
	// -12.000000001
}

func ExampleAppendPlacesBody() {
	body := codec.AppendStyled(nil, codec.Object{
		{Key: "html_attributions", Value: codec.Array{}},
		{Key: "results", Value: codec.Array{
			codec.Object{{Key: "name", Value: "Legends Chicken & Fish"}, {Key: "rating", Value: codec.Number("4.5")}},
			codec.Object{{Key: "name", Value: "<b>Humble</b> Eats"}, {Key: "rating", Value: 4}},
		}},
		{Key: "status", Value: "OK"},
	})
	reply := []byte("AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503\n")
	reply, err := codec.AppendPlacesBody(reply, body, 1)
	if err != nil {
		panic(err)
	}
	reply = append(reply, "\n\n"...)
	fmt.Printf("%s", reply)
	// Output:
	// AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503
	// {
	//    "html_attributions" : [],
	//    "results" : [
	//       {
	//          "name" : "Legends Chicken & Fish",
	//          "rating" : 4.5
	//       }
	//    ],
	//    "status" : "OK"
	// }
	//
}

func ExampleAppendErrorBody() {
	fmt.Printf("%s", codec.AppendErrorBody(nil, "UNKNOWN_ERROR", "places: timeout"))
	// Output:
	// {
	//    "error_message" : "places: timeout",
	//    "html_attributions" : [],
	//    "results" : [],
	//    "status" : "UNKNOWN_ERROR"
	// }
}

func ExampleDecoder() {
	d := codec.NewDecoder(codec.DefaultMaxLine)
	for _, chunk := range []string{"IAMAT a +1+1 1\r\nWHAT", "SAT a 10 5\nIAMAT b +2+2 2"} {
		d.Feed([]byte(chunk))
		for {
			line, ok, err := d.Next()
			if err != nil || !ok {
				break
			}
			fmt.Printf("%q\n", line)
		}
	}
	if line, err := d.Final(); err == nil { // the peer half-closed
		fmt.Printf("%q\n", line)
	}
	// Output:
	// "IAMAT a +1+1 1"
	// "WHATSAT a 10 5"
	// "IAMAT b +2+2 2"
}

func ExampleAppendFields() {
	line := []byte(" AT\tZed  +0.5 kiwi\v+1+1 7 \r")
	fmt.Printf("%q\n", codec.AppendFields(nil, line))
	fmt.Printf("%q\n", codec.Field(line, 3))
	// Output:
	// "AT Zed +0.5 kiwi +1+1 7"
	// "kiwi"
}
