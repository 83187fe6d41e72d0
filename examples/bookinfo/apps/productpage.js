// Bookinfo's product page, reduced to text: asks details and reviews by service name (plain HTTP;
// the mesh captures it) and shows what they answered and which version of reviews answered.
'use strict';
const { getJson, identity, propagatedHeaders, serve } = require('./http-json');

const self = identity('productpage');
const detailsUrl = process.env.DETAILS_URL || 'http://details:9080';
const reviewsUrl = process.env.REVIEWS_URL || 'http://reviews:9080';

function stars(rating) {
  return '★'.repeat(rating.stars) + '☆'.repeat(Math.max(0, 5 - rating.stars));
}

function detailsLine(details) {
  return `details: "${details.title}" by ${details.author} (details ${details.version} on ${details.node})`;
}

function reviewsLine(reviews) {
  const head = `reviews: ${reviews.version} on ${reviews.node}`;
  if (reviews.ratingsError) return `${head}, ${reviews.ratingsError}`;
  const rated = reviews.reviews.filter((review) => review.rating);
  if (rated.length === 0) return `${head}, no ratings`;
  const shown = rated.map((review) => `${review.reviewer} ${stars(review.rating)}`).join(', ');
  return `${head}, ratings: ${shown} in ${rated[0].rating.color} (ratings ${reviews.ratingsFrom.version} on ${reviews.ratingsFrom.node})`;
}

serve('productpage', async (request, response) => {
  const path = request.url.split('?')[0];
  if (request.method !== 'GET' || (path !== '/' && path !== '/productpage')) {
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    return response.end(`no such page: ${request.method} ${request.url}\n`);
  }
  const headers = propagatedHeaders(request);
  const [details, reviews] = await Promise.allSettled([getJson(`${detailsUrl}/details/0`, headers), getJson(`${reviewsUrl}/reviews/0`, headers)]);
  const user = headers['end-user'] ? ` (signed in as ${headers['end-user']})` : '';
  const lines = [
    `productpage ${self.version} on ${self.node}${user}`,
    details.status === 'fulfilled' ? detailsLine(details.value) : `details: unavailable (${details.reason.message})`,
    reviews.status === 'fulfilled' ? reviewsLine(reviews.value) : `reviews: unavailable (${reviews.reason.message})`,
  ];
  const body = lines.join('\n') + '\n';
  response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  response.end(body);
});
