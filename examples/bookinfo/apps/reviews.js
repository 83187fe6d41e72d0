// Bookinfo's reviews service in its three versions (SERVICE_VERSION): v1 shows no stars and never
// calls ratings; v2 shows black stars and v3 red ones, both from the ratings service.
'use strict';
const { getJson, identity, propagatedHeaders, sendJson, serve } = require('./http-json');

const self = identity('reviews');
const ratingsUrl = process.env.RATINGS_URL || 'http://ratings:9080';
const STAR_COLOR = { v2: 'black', v3: 'red' };
const REVIEWS = [
  { reviewer: 'Reviewer1', text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!' },
  { reviewer: 'Reviewer2', text: 'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.' },
];

serve('reviews', async (request, response) => {
  const match = /^\/reviews\/(\d+)$/.exec(request.url.split('?')[0]);
  if (request.method !== 'GET' || !match) return sendJson(response, 404, { error: `no such resource: ${request.method} ${request.url}` });
  const id = Number(match[1]);
  const color = STAR_COLOR[self.version];
  if (color === undefined) return sendJson(response, 200, { ...self, id, reviews: REVIEWS });
  try {
    const ratings = await getJson(`${ratingsUrl}/ratings/${id}`, propagatedHeaders(request));
    const reviews = REVIEWS.map((review) => ({ ...review, rating: { stars: ratings.ratings[review.reviewer], color } }));
    sendJson(response, 200, { ...self, id, reviews, ratingsFrom: { version: ratings.version, node: ratings.node } });
  } catch (error) {
    // As in Bookinfo, the reviews still show; the stars say why they are missing.
    sendJson(response, 200, { ...self, id, reviews: REVIEWS, ratingsError: `ratings service is currently unavailable (${error.message})` });
  }
});
