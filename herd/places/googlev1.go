package places

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/herd-project/herd/codec"
	"github.com/valyala/fasthttp"
)

// V1FieldMask names exactly the Place fields the v1 provider maps to the legacy shape.
const V1FieldMask = "places.id,places.displayName,places.location,places.viewport,places.types," +
	"places.rating,places.userRatingCount,places.shortFormattedAddress,places.businessStatus," +
	"places.currentOpeningHours,places.priceLevel,places.plusCode," +
	"places.iconMaskBaseUri,places.iconBackgroundColor"

// googleV1 is the Places API (New) provider; it maps the answer to the legacy shape and layout.
type googleV1 struct{ upstream }

func newGoogleV1(cfg Config) (*googleV1, error) {
	u, err := newUpstream(cfg, DefaultGoogleV1URL)
	if err != nil {
		return nil, err
	}
	return &googleV1{u}, nil
}

func (g *googleV1) Name() string { return GoogleV1 }

// v1Body is the searchNearby request body. It asks for a full page (MaxResults), as the legacy
// API always answers, whatever the caller's bound: one answer serves every bound.
func v1Body(dst []byte, r Request) []byte {
	dst = append(dst, `{"maxResultCount":`...)
	dst = strconv.AppendInt(dst, MaxResults, 10)
	dst = append(dst, `,"locationRestriction":{"circle":{"center":{"latitude":`...)
	dst = strconv.AppendFloat(dst, r.LatF, 'f', -1, 64)
	dst = append(dst, `,"longitude":`...)
	dst = strconv.AppendFloat(dst, r.LngF, 'f', -1, 64)
	dst = append(dst, `},"radius":`...)
	dst = strconv.AppendFloat(dst, r.RadiusMF, 'f', -1, 64)
	return append(dst, `}}}`...)
}

type v1LatLng struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

type v1Place struct {
	ID          string `json:"id"`
	DisplayName *struct {
		Text string `json:"text"`
	} `json:"displayName"`
	Location *v1LatLng `json:"location"`
	Viewport *struct {
		Low  v1LatLng `json:"low"`
		High v1LatLng `json:"high"`
	} `json:"viewport"`
	Types                 []string     `json:"types"`
	Rating                *json.Number `json:"rating"`
	UserRatingCount       *json.Number `json:"userRatingCount"`
	ShortFormattedAddress string       `json:"shortFormattedAddress"`
	BusinessStatus        string       `json:"businessStatus"`
	CurrentOpeningHours   *struct {
		OpenNow *bool `json:"openNow"`
	} `json:"currentOpeningHours"`
	PriceLevel string `json:"priceLevel"`
	PlusCode   *struct {
		GlobalCode   string `json:"globalCode"`
		CompoundCode string `json:"compoundCode"`
	} `json:"plusCode"`
	IconMaskBaseURI     string `json:"iconMaskBaseUri"`
	IconBackgroundColor string `json:"iconBackgroundColor"`
}

type v1Error struct {
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	} `json:"error"`
}

// Nearby asks POST {base}/v1/places:searchNearby and maps the answer to the legacy shape.
func (g *googleV1) Nearby(ctx context.Context, r Request) ([]byte, error) {
	r = normalize(r)
	return g.call(ctx, func(req *fasthttp.Request) {
		req.SetRequestURI(g.base + V1Path)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.Header.Set("X-Goog-Api-Key", g.apiKey)
		req.Header.Set("X-Goog-FieldMask", V1FieldMask)
		req.SetBody(v1Body(req.Body(), r))
	}, g.answer)
}

// answer reads the answer of Places API (New) and maps it to the legacy shape.
func (g *googleV1) answer(resp *fasthttp.Response) ([]byte, error) {
	body := resp.Body()
	sc := resp.StatusCode()
	if sc != fasthttp.StatusOK {
		var e v1Error
		if json.Unmarshal(body, &e) != nil || e.Error == nil {
			return failure(fmt.Errorf("%w %d", ErrHTTP, sc))
		}
		status := legacyStatus(e.Error.Status)
		msg := g.scrub(e.Error.Message)
		return codec.AppendErrorBody(nil, status, msg), &StatusError{Status: status, Message: msg}
	}
	var ans struct {
		Places []v1Place `json:"places"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return failure(fmt.Errorf("%w: not JSON (%d bytes)", ErrBadBody, len(body)))
	}
	return g.appendLegacy(nil, ans.Places), nil
}

// legacyStatus maps a google.rpc status name to the legacy Places status.
func legacyStatus(s string) string {
	switch s {
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		return "INVALID_REQUEST"
	case "PERMISSION_DENIED", "UNAUTHENTICATED":
		return "REQUEST_DENIED"
	case "RESOURCE_EXHAUSTED":
		return "OVER_QUERY_LIMIT"
	default:
		return "UNKNOWN_ERROR"
	}
}

var priceLevels = map[string]int{
	"PRICE_LEVEL_FREE":           0,
	"PRICE_LEVEL_INEXPENSIVE":    1,
	"PRICE_LEVEL_MODERATE":       2,
	"PRICE_LEVEL_EXPENSIVE":      3,
	"PRICE_LEVEL_VERY_EXPENSIVE": 4,
}

// legacyIcon derives the legacy png icon from v1's icon mask ("…/icons/v2/restaurant_pinlet"
// -> "…/icons/v1/png_71/restaurant-71.png"; generic -> generic_business).
func legacyIcon(mask string) string {
	const v2 = "https://maps.gstatic.com/mapfiles/place_api/icons/v2/"
	name, ok := strings.CutPrefix(mask, v2)
	if !ok {
		return ""
	}
	name = strings.TrimSuffix(name, "_pinlet")
	if name == "generic" {
		name = "generic_business"
	}
	if name == "" || strings.ContainsAny(name, "/?#") {
		return ""
	}
	return "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/" + name + "-71.png"
}

func (g *googleV1) appendLegacy(dst []byte, ps []v1Place) []byte {
	results := make(codec.Array, 0, len(ps))
	for i := range ps {
		results = append(results, g.legacyPlace(&ps[i]))
	}
	return appendLegacyBody(dst, results)
}

func (g *googleV1) legacyPlace(p *v1Place) codec.Object {
	var o codec.Object
	add := func(k string, v any) { o = append(o, codec.Member{Key: k, Value: v}) }
	if p.BusinessStatus != "" {
		add("business_status", p.BusinessStatus)
	}
	if p.Location != nil {
		lat, lng := p.Location.Latitude, p.Location.Longitude
		geo := codec.Object{{Key: "location", Value: latLng(lat, lng)}}
		ne, sw := latLng(lat+viewportHalf, lng+viewportHalf), latLng(lat-viewportHalf, lng-viewportHalf)
		if v := p.Viewport; v != nil {
			ne, sw = latLng(v.High.Latitude, v.High.Longitude), latLng(v.Low.Latitude, v.Low.Longitude)
		}
		geo = append(geo, codec.Member{Key: "viewport", Value: codec.Object{
			{Key: "northeast", Value: ne}, {Key: "southwest", Value: sw},
		}})
		add("geometry", geo)
	}
	if icon := legacyIcon(p.IconMaskBaseURI); icon != "" {
		add("icon", icon)
	}
	if p.IconBackgroundColor != "" {
		add("icon_background_color", p.IconBackgroundColor)
	}
	if p.IconMaskBaseURI != "" {
		add("icon_mask_base_uri", p.IconMaskBaseURI)
	}
	if p.DisplayName != nil {
		add("name", p.DisplayName.Text)
	}
	if h := p.CurrentOpeningHours; h != nil && h.OpenNow != nil {
		add("opening_hours", codec.Object{{Key: "open_now", Value: *h.OpenNow}})
	}
	if p.ID != "" {
		add("place_id", p.ID)
	}
	if pc := p.PlusCode; pc != nil && pc.GlobalCode != "" {
		plus := codec.Object{{Key: "global_code", Value: pc.GlobalCode}}
		if pc.CompoundCode != "" {
			plus = append(plus, codec.Member{Key: "compound_code", Value: pc.CompoundCode})
		}
		add("plus_code", plus)
	}
	if lvl, ok := priceLevels[p.PriceLevel]; ok {
		add("price_level", lvl)
	}
	if p.Rating != nil {
		add("rating", codec.Number(*p.Rating))
	}
	if p.ID != "" {
		add("reference", p.ID)
		add("scope", "GOOGLE")
	}
	if len(p.Types) > 0 {
		ta := make(codec.Array, len(p.Types))
		for i, t := range p.Types {
			ta[i] = t
		}
		add("types", ta)
	}
	if p.UserRatingCount != nil {
		add("user_ratings_total", codec.Number(*p.UserRatingCount))
	} else if p.Rating != nil {
		add("user_ratings_total", 0)
	}
	if p.ShortFormattedAddress != "" {
		add("vicinity", p.ShortFormattedAddress)
	}
	return o
}
