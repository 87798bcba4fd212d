package places_test

import (
	"context"
	"fmt"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places"
)

// The offline provider answers from the embedded GeoNames cities: here, what lies within
// 5 km of Santa Monica, nearest first, in Google's legacy shape. Bound is left to the caller's
// cut (codec.AppendPlacesBody): the provider gives up to 20.
func ExampleNew() {
	p, err := places.New(places.Config{Provider: places.Offline})
	if err != nil {
		fmt.Println(err)
		return
	}
	body, err := p.Nearby(context.Background(), places.Request{
		Lat: "+34.01949", Lng: "-118.49138", RadiusM: "5000",
		LatF: 34.01949, LngF: -118.49138, RadiusMF: 5000, Bound: 3,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	v, _ := codec.ParseJSON(body)
	for _, m := range v.(codec.Object) {
		switch m.Key {
		case "status":
			fmt.Println("status:", m.Value)
		case "results":
			for _, r := range m.Value.(codec.Array) {
				for _, f := range r.(codec.Object) {
					if f.Key == "vicinity" {
						fmt.Println(f.Value)
					}
				}
			}
		}
	}
	// Output:
	// Santa Monica, California
	// Brentwood, California
	// Sawtelle, California
	// Venice, California
	// Pacific Palisades, California
	// status: OK
}

func ExampleDistance() {
	km := places.Distance(34.05223, -118.24368, 34.01949, -118.49138) / 1000
	fmt.Printf("Los Angeles to Santa Monica: %.1f km\n", km)
	// Output:
	// Los Angeles to Santa Monica: 23.1 km
}
