// Bookinfo's details service: facts about book 0. The product page shows them next to the reviews.
'use strict';
const { identity, sendJson, serve } = require('./http-json');

const self = identity('details');

serve('details', (request, response) => {
  if (request.method !== 'GET' || !/^\/details\/\d+$/.test(request.url.split('?')[0])) {
    return sendJson(response, 404, { error: `no such resource: ${request.method} ${request.url}` });
  }
  sendJson(response, 200, { ...self, id: Number(request.url.split('/')[2]), title: 'The Comedy of Errors', author: 'William Shakespeare', year: 1595, pages: 200 });
});
